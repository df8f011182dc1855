"""tumorseg.fetch against a local HTTP server on 127.0.0.1 serving a small archive of the same shape."""

import io
import os
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import assert_one_error, run_main
from tumorseg.errors import UserError
from tumorseg.fetch import fetch

ROOT = "Lung-TumorDetection-Segmentation-detected_tumor_segmentation/LungTumorDetectionAndSegmentation"


def png(value: int) -> bytes:
    return cv2.imencode(".png", np.full((8, 8), value, np.uint8))[1].tobytes()


def archive(extra: dict[str, bytes] | None = None, compression: int = zipfile.ZIP_STORED) -> bytes:
    """2 train subjects x 2 slices, 1 val subject, plus files that must not be extracted, plus `extra` members."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in (extra or {}).items():
            zf.writestr(f"{ROOT}/{name}", data)
        for part, subjects in (("train", (1, 2)), ("val", (57,))):
            for s in subjects:
                for k in (0, 1):
                    zf.writestr(f"{ROOT}/{part}/images/Subject_{s}/{k}.png", png(100))
                    zf.writestr(f"{ROOT}/{part}/masks/Subject_{s}/{k}.png", png(255 * k))
        zf.writestr(f"{ROOT}/notebook.ipynb", "{}")
        zf.writestr(f"{ROOT}/test/images/x.png", png(1))
        zf.writestr(f"{ROOT}/train/images/../../../../escaped.png", png(1))
    return buf.getvalue()


class Server:
    """Serves one archive with HTTP Range support; can cut the first response short."""

    def __init__(self, payload: bytes, cut_first_at: int | None = None):
        self.payload, self.cut, self.requests = payload, cut_first_at, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append(self.headers.get("Range"))
                start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
                if start and start >= len(server.payload):  # as real servers answer a range past the end
                    self.send_response(416)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = server.payload[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut is not None:
                    body, server.cut = body[: server.cut], None  # connection drops mid-download
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/archive.zip"

    def close(self):
        self.httpd.shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_fetch_resumes_extracts_safely_and_is_idempotent(tmp_path):
    payload = archive()
    server = Server(payload, cut_first_at=len(payload) // 2)
    dest = tmp_path / "data/lung-ct-slices"
    try:
        with pytest.raises(UserError, match="run again to resume"):
            fetch(server.url, dest)
        assert (tmp_path / "data/lung-ct-slices.zip.part").stat().st_size == len(payload) // 2
        counts = fetch(server.url, dest)
        assert server.requests[-1] == f"bytes={len(payload) // 2}-"  # resumed, not restarted
        assert counts == {"train": 4, "train_subjects": 2, "val": 2, "val_subjects": 1}
        assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*.png"))[:2] == [
            "train/images/Subject_1/0.png", "train/images/Subject_1/1.png"]
        assert not (dest / "test").exists() and not (dest / "notebook.ipynb").exists()
        assert not list(tmp_path.rglob("escaped.png"))
        assert not (tmp_path / "data/lung-ct-slices.zip.part").exists()
        n_requests = len(server.requests)
        assert fetch(server.url, dest) == counts and len(server.requests) == n_requests  # nothing fetched again
    finally:
        server.close()


def test_fetch_refuses_to_overwrite_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine/notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="was not made by tumorseg.fetch"):
        fetch("http://127.0.0.1:9/none.zip", tmp_path / "mine")
    assert (tmp_path / "mine/notes.txt").read_text() == "keep me"


def test_unreachable_server_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="cannot reach"):
        fetch("http://127.0.0.1:9/none.zip", tmp_path / "data/d")
    assert not list(tmp_path.iterdir())  # the folder made for the download is gone with it


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file below root with its bytes, every folder as None."""
    return {p.relative_to(root).as_posix(): None if p.is_dir() else p.read_bytes() for p in root.rglob("*")}


def refused(result, *names: str) -> str:
    """Assert exit 2 with one line `error: ...` on stderr naming each of names, and no traceback; that line."""
    assert_one_error(result, *names)
    return result.stderr.strip()


def damaged(payload: bytes, member: str) -> bytes:
    """payload with the compressed data of one member overwritten: an intact zip whose deflate stream is corrupt."""
    info = zipfile.ZipFile(io.BytesIO(payload)).getinfo(f"{ROOT}/{member}")
    local = info.header_offset
    start = local + 30 + int.from_bytes(payload[local + 26:local + 28], "little") + int.from_bytes(
        payload[local + 28:local + 30], "little")
    return payload[:start] + b"\xff" * info.compress_size + payload[start + info.compress_size:]


def fetch_main(dest, url: str, *options: str):
    """`tumorseg fetch dest=DEST url=URL OPTIONS...`, in this process."""
    return run_main("tumorseg.fetch", f"dest={dest}", f"url={url}", *options)


@pytest.fixture
def user_files(tmp_path) -> Path:
    """tmp_path holding a file of the user's beside the data set, which no run may change."""
    (tmp_path / "notes.txt").write_text("keep me")
    return tmp_path


def test_corrupt_member_data_is_removed_and_a_rerun_starts_clean(user_files):
    good = archive(compression=zipfile.ZIP_DEFLATED)
    bad = damaged(good, "train/images/Subject_1/0.png")
    dest, part = user_files / "d", user_files / "d.zip.part"
    before = snapshot(user_files)
    with Server(bad) as server:
        line = refused(fetch_main(dest, server.url), "d.zip.part", "Subject_1/0.png", "removed")
    assert "damaged" in line and snapshot(user_files) == before

    part.write_bytes(bad)  # a complete but damaged download kept from an earlier run: the server answers 416
    with Server(good) as server:
        refused(fetch_main(dest, server.url), "d.zip.part", "removed")
        assert server.requests == [f"bytes={len(bad)}-"]
        assert snapshot(user_files) == before
        assert fetch_main(dest, server.url).returncode == 0
        assert server.requests[-1] is None  # started clean, not resumed
    assert (dest / "train/images/Subject_1/0.png").is_file() and not part.exists()
    assert {k: v for k, v in snapshot(user_files).items() if not k.startswith("d/") and k != "d"} == before


def test_a_member_file_where_a_folder_must_be_is_refused(user_files):
    payload = archive({"train/images/Subject_1": b"not a folder"})
    before = snapshot(user_files)
    with Server(payload) as server:
        refused(fetch_main(user_files / "d", server.url), "d.zip.part", "train/images/Subject_1", "url=")
    assert snapshot(user_files) == before


def test_extraction_is_capped_by_max_extract_bytes(user_files):
    big = {"train/images/Subject_1/big.png": bytes(5_000_000), "train/masks/Subject_1/big.png": png(0)}
    payload = archive(big, zipfile.ZIP_DEFLATED)
    assert len(payload) < 100_000
    before = snapshot(user_files)
    with Server(payload) as server:
        refused(fetch_main(user_files / "d", server.url, "max_extract_bytes=1000000"),
                "d.zip.part", "max_extract_bytes=1000000")
        assert snapshot(user_files) == before
        refused(fetch_main(user_files / "d", server.url, "max_extract_bytes=abc"), "max_extract_bytes=abc")
    assert snapshot(user_files) == before


def test_bytes_written_are_counted_not_only_the_declared_sizes(user_files, monkeypatch):
    import tumorseg.fetch as fetch_module

    monkeypatch.setattr(fetch_module, "checked_members", lambda archive, name, budget: fetch_module.wanted_members(
        archive))  # as if the central directory declared small sizes
    before = snapshot(user_files)
    big = {"train/images/Subject_1/big.png": bytes(3_000_000), "train/masks/Subject_1/big.png": png(0)}
    with Server(archive(big, zipfile.ZIP_DEFLATED)) as server, pytest.raises(UserError, match="while writing .*big"):
        fetch(server.url, user_files / "d", max_extract_bytes=1_000_000)
    assert snapshot(user_files) == before


def test_dest_dot_fills_the_empty_current_folder_and_never_removes_it(tmp_path, monkeypatch):
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    inode = os.stat(here).st_ino
    with Server(archive()) as server:
        assert fetch_main(".", server.url).returncode == 0
        n_requests = len(server.requests)
        assert fetch_main(".", server.url).returncode == 0 and len(server.requests) == n_requests
    assert os.stat(here).st_ino == inode and Path.cwd() == here
    assert sorted(p.name for p in here.iterdir()) == [".fetched.json", "train", "val"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here"]  # nothing written beside it


def test_dest_dot_survives_a_bad_download_and_a_folder_of_the_users(tmp_path, monkeypatch):
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    inode = os.stat(here).st_ino
    with Server(b"not a zip") as server:
        refused(fetch_main(".", server.url), ".fetch.zip.part", "removed")
    assert os.stat(here).st_ino == inode and not list(here.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here"]

    (here / "notes.txt").write_text("keep me")
    before = snapshot(tmp_path)
    with Server(archive()) as server:
        refused(fetch_main(".", server.url), str(here), "dest=")
        assert server.requests == []
    assert snapshot(tmp_path) == before and os.stat(here).st_ino == inode
