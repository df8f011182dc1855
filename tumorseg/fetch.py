"""Download the public lung CT slices into data/lung-ct-slices: resumable, idempotent, safe extraction.

    tumorseg fetch [dest=data/lung-ct-slices] [url=URL] [max_extract_bytes=1000000000]

Source: the GitHub repository SaraElwatany/Lung-TumorDetection-Segmentation, branch
detected_tumor_segmentation, folder LungTumorDetectionAndSegmentation/: 2D slices derived from the
Medical Segmentation Decathlon, Task06 Lung (http://medicaldecathlon.com), CC-BY-SA 4.0. Attribution
and share-alike apply to the downloaded files.
"""

import json
import os
import secrets
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath

import hydra
from omegaconf import DictConfig
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from tumorseg import CONF_DIR
from tumorseg.data.layout import find_pairs
from tumorseg.errors import UserError, exit_on_user_error

URL = ("https://github.com/SaraElwatany/Lung-TumorDetection-Segmentation/archive/refs/heads/"
       "detected_tumor_segmentation.zip")
FOLDER = "LungTumorDetectionAndSegmentation"
WANTED = {(part, kind) for part in ("train", "val") for kind in ("images", "masks")}
MARKER = ".fetched.json"
# Names of fetch's own work files inside a dest folder that existed before (a mount point, `dest=.`): they are
# what fetch may find there from an earlier run without taking the folder for the user's.
OWN = ".fetch."
# The real data set unpacks to about 60 MB; the budget stops an archive that would fill the disk.
MAX_EXTRACT_BYTES = 1_000_000_000
# What reading a damaged archive raises: a broken central directory or CRC, corrupt or truncated compressed data,
# a method or an encryption zipfile cannot read.
DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError)


def download(url: str, part: Path, chunk: int = 1 << 20) -> Path:
    """Fetch url into `part`, continuing a partial file with an HTTP Range request."""
    done = part.stat().st_size if part.exists() else 0
    try:
        request = urllib.request.Request(url, headers={"Range": f"bytes={done}-"} if done else {})
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as err:
        if err.code == 416 and done:  # nothing left to fetch; extraction verifies what was kept
            return part
        raise UserError(f"{url} answered HTTP {err.code}: check url=") from None
    except (urllib.error.URLError, OSError) as err:
        raise UserError(f"cannot reach {url} ({getattr(err, 'reason', err)}): check the network or url=") from None
    except ValueError as err:
        raise UserError(f"url={url} is not a URL ({err}): give an http(s):// or file:// address") from None
    if done and response.status != 206:  # the server ignored the range: start again
        done = 0
    length = response.headers.get("Content-Length")
    total = done + int(length) if length else None
    columns = ("{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn())
    try:
        with open(part, "ab" if done else "wb") as out, Progress(*columns, transient=True) as progress:
            task = progress.add_task("downloading", total=total, completed=done)
            while data := response.read(chunk):
                out.write(data)
                progress.advance(task, len(data))
    except (OSError, urllib.error.URLError) as err:
        raise UserError(f"download of {url} broke off ({err}): run the same command again to resume") from None
    if total is not None and part.stat().st_size < total:
        raise UserError(f"download of {url} stopped at {part.stat().st_size} of {total} bytes: run again to resume")
    return part


def wanted_members(archive: zipfile.ZipFile) -> list[tuple[zipfile.ZipInfo, Path]]:
    """Files of {train,val}/{images,masks} below FOLDER, with their path relative to it; unsafe names skipped."""
    out = []
    for info in archive.infolist():
        path = PurePosixPath(info.filename)
        if info.is_dir() or FOLDER not in path.parts or path.is_absolute() or ".." in path.parts:
            continue
        rel = path.parts[path.parts.index(FOLDER) + 1:]
        if len(rel) >= 3 and (rel[0], rel[1]) in WANTED:
            out.append((info, Path(*rel)))
    return out


def checked_members(archive: zipfile.ZipFile, name: Path, budget: int) -> list[tuple[zipfile.ZipInfo, Path]]:
    """The wanted members, refused from the central directory alone when a file stands where a folder must be or
    their declared sizes exceed the budget."""
    members = wanted_members(archive)
    files = {rel: info.filename for info, rel in members}
    for info, rel in members:
        clash = next((files[p] for p in rel.parents if p in files), None)
        if clash:
            raise UserError(f"the archive {name} holds {clash} as a file, but {info.filename} needs it to be a "
                            f"folder: removed it; check url=")
    declared = sum(info.file_size for info, _ in members)
    if declared > budget:
        raise too_big(name, budget, f"its files declare {declared} bytes")
    return members


def too_big(name: Path, budget: int, how: str) -> UserError:
    """The error for an archive that unpacks to more than the budget."""
    return UserError(f"the archive {name} unpacks to more than max_extract_bytes={budget} ({how}): removed it; "
                     f"check url=, or raise max_extract_bytes= if the data set really is that big")


def copy_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, room: int) -> int:
    """Stream one member to target, stopping once it passes `room` bytes; the bytes written."""
    written = 0
    with archive.open(info) as src, open(target, "wb") as out:
        while data := src.read(1 << 20):
            written += len(data)
            if written > room:
                break
            out.write(data)
    if written <= room and written != info.file_size:
        raise zipfile.BadZipFile(f"{info.filename} unpacks to {written} bytes, its header says {info.file_size}")
    return written


def extract_into(archive_path: Path, staging: Path, budget: int) -> None:
    """Verify and extract the wanted members into staging: CRC and size of each, and at most `budget` bytes written."""
    member = None
    try:
        with zipfile.ZipFile(archive_path) as archive:
            room = budget
            for info, rel in checked_members(archive, archive_path, budget):
                member, target = info.filename, (staging / rel).resolve()
                if staging.resolve() not in target.parents:  # defence in depth against path escapes
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                room -= copy_member(archive, info, target, room)
                if room < 0:
                    raise too_big(archive_path, budget, f"counted while writing {member}")
    except DAMAGED as err:
        where = f"{member}: " if member else ""
        raise UserError(f"the download {archive_path} is damaged ({where}{err}): removed it; run the same command "
                        f"again to download it anew (if that fails the same way, check url=)") from None
    except OSError as err:
        raise UserError(f"cannot extract into {staging.parent} ({err.strerror}: {err.filename}): removed the "
                        f"download; free some space, or set dest= to a folder you can write") from None


def count_pairs(staging: Path, archive_path: Path) -> dict[str, int]:
    """Slices and subjects per part, once every image is checked to have its mask."""
    counts = {}
    for part in ("train", "val"):
        if not (staging / part).is_dir():
            raise UserError(f"the archive {archive_path} holds no {FOLDER}/{part}/: removed it; check url=")
        try:
            samples = find_pairs(staging / part)
        except UserError as err:
            problem = str(err).replace(str(staging), FOLDER)  # the staging folder is gone when the user reads this
            raise UserError(f"the archive {archive_path} is not the data set ({problem}): "
                            "removed it; check url=") from None
        counts[part] = len(samples)
        counts[f"{part}_subjects"] = len({s.subject for s in samples})
    return counts


def new_staging(dest: Path) -> Path:
    """A fresh folder to extract into: inside dest when that exists already, else beside it (same file system)."""
    base, prefix = (dest, OWN) if dest.is_dir() else (dest.parent, f".{dest.name}.")
    staging = base / f"{prefix}{secrets.token_hex(4)}.partial"
    try:
        staging.mkdir()
    except OSError as err:
        raise UserError(f"cannot create {staging} ({err.strerror}): set dest= to a folder you can write") from None
    return staging


def place(staging: Path, dest: Path) -> None:
    """Move the extracted data set to dest: a rename, or into a folder that existed, which is never replaced."""
    if not dest.is_dir():
        os.replace(staging, dest)
        return
    for child in sorted(staging.iterdir(), key=lambda p: p.name == MARKER):  # the marker last: complete, then marked
        os.replace(child, dest / child.name)
    staging.rmdir()


def unpack(archive_path: Path, staging: Path, dest: Path, url: str, budget: int) -> dict[str, int]:
    """Verify and extract the archive via staging, check the layout, move it to dest; on an error staging goes."""
    try:
        extract_into(archive_path, staging, budget)
        counts = count_pairs(staging, archive_path)
        (staging / MARKER).write_text(json.dumps({"url": url, **counts}))
        place(staging, dest)
        return counts
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # after place() there is nothing left to remove


def check_dest(dest: Path) -> None:
    """Refuse a dest that is a file or a folder holding anything fetch did not put there."""
    if dest.exists() and not dest.is_dir():
        raise UserError(f"dest={dest} is a file: set dest= to a new or empty folder")
    if dest.is_dir() and any(not p.name.startswith(OWN) for p in dest.iterdir()):
        raise UserError(f"{dest} exists and was not made by tumorseg.fetch: set dest= to a new or empty folder")


def make_folder(folder: Path) -> list[Path]:
    """Create folder and its missing parents; the ones created, deepest first."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create {folder} ({err.strerror}): set dest= to a folder you can write") from None
    return missing


def remove_empty(folders: list[Path]) -> None:
    """Remove those of the folders (deepest first) that are empty; one holding anything stays, and so do its parents."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def fetch(url: str, dest: Path, max_extract_bytes: int = MAX_EXTRACT_BYTES) -> dict[str, int]:
    """Download and extract once; a second call with the same dest does nothing."""
    dest = Path(os.path.abspath(dest))  # `dest=.` and `x/..` name a folder too
    marker = dest / MARKER
    if marker.is_file():
        return {k: v for k, v in json.loads(marker.read_text()).items() if k != "url"}
    check_dest(dest)
    part = dest / f"{OWN}zip.part" if dest.is_dir() else dest.with_name(dest.name + ".zip.part")
    made = make_folder(part.parent)
    try:
        download(url, part)
        staging = new_staging(dest)
        try:
            counts = unpack(part, staging, dest, url, max_extract_bytes)
        except UserError:  # a download that is damaged or not the data set: a rerun must not reuse it
            part.unlink(missing_ok=True)
            raise
    finally:
        remove_empty(made)
    part.unlink()
    return counts


def byte_budget(value) -> int:
    """max_extract_bytes as a positive whole number (1e9 allowed)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UserError(f"max_extract_bytes={value} is not a positive whole number of bytes: "
                        f"e.g. max_extract_bytes={MAX_EXTRACT_BYTES}")
    return value


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="fetch")
@exit_on_user_error
def main(cfg: DictConfig) -> dict[str, int]:
    if not cfg.dest:
        raise UserError("dest is not set: dest=<folder> where the data set goes, e.g. dest=data/lung-ct-slices")
    counts = fetch(cfg.url or URL, Path(cfg.dest), byte_budget(cfg.max_extract_bytes))
    print("Slices derived from the Medical Segmentation Decathlon Task06 Lung, CC-BY-SA 4.0.", file=sys.stderr)
    print(f"{cfg.dest}: train {counts['train']} slices / {counts['train_subjects']} subjects, "
          f"val {counts['val']} slices / {counts['val_subjects']} subjects")
    return counts


if __name__ == "__main__":
    main()
