"""tumorseg.fetch against a local HTTP server on 127.0.0.1 serving a small archive of the same shape."""

import io
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest

from tumorseg.errors import UserError
from tumorseg.fetch import fetch

ROOT = "Lung-TumorDetection-Segmentation-detected_tumor_segmentation/LungTumorDetectionAndSegmentation"


def png(value: int) -> bytes:
    return cv2.imencode(".png", np.full((8, 8), value, np.uint8))[1].tobytes()


def archive() -> bytes:
    """2 train subjects x 2 slices, 1 val subject, plus files that must not be extracted."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
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
        fetch("http://127.0.0.1:9/none.zip", tmp_path / "d")
