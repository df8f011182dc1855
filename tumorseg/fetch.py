"""Download the public lung CT slices into data/lung-ct-slices: resumable, idempotent, safe extraction.

    tumorseg fetch [dest=data/lung-ct-slices] [url=URL]

Source: the GitHub repository SaraElwatany/Lung-TumorDetection-Segmentation, branch
detected_tumor_segmentation, folder LungTumorDetectionAndSegmentation/: 2D slices derived from the
Medical Segmentation Decathlon, Task06 Lung (http://medicaldecathlon.com), CC-BY-SA 4.0. Attribution
and share-alike apply to the downloaded files.
"""

import json
import os
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
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


def download(url: str, part: Path, chunk: int = 1 << 20) -> Path:
    """Fetch url into `part`, continuing a partial file with an HTTP Range request."""
    done = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={done}-"} if done else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as err:
        if err.code == 416 and done:  # nothing left to fetch
            return part
        raise UserError(f"{url} answered HTTP {err.code}: check url=") from None
    except (urllib.error.URLError, OSError) as err:
        raise UserError(f"cannot reach {url} ({getattr(err, 'reason', err)}): check the network or --url") from None
    if done and response.status != 206:  # the server ignored the range: start again
        done = 0
    length = response.headers.get("Content-Length")
    total = done + int(length) if length else None
    part.parent.mkdir(parents=True, exist_ok=True)
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


def extract(archive_path: Path, dest: Path) -> dict[str, int]:
    """Extract the wanted files beside dest, check every image has its mask, then move into place."""
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive_path) as archive:
            for info, rel in wanted_members(archive):
                target = (staging / rel).resolve()
                if staging.resolve() not in target.parents:  # defence in depth against path escapes
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
    except zipfile.BadZipFile:
        archive_path.unlink()
        raise UserError(f"{archive_path} is not a zip archive: removed it; run again to download anew") from None
    counts = {}
    for part in ("train", "val"):
        if not (staging / part).is_dir():
            raise UserError(f"the archive holds no {FOLDER}/{part}/: check url=")
        samples = find_pairs(staging / part)
        counts[part] = len(samples)
        counts[f"{part}_subjects"] = len({s.subject for s in samples})
    os.replace(staging, dest)
    return counts


def fetch(url: str, dest: Path) -> dict[str, int]:
    """Download and extract once; a second call with the same dest does nothing."""
    marker = dest / MARKER
    if marker.is_file():
        return {k: v for k, v in json.loads(marker.read_text()).items() if k != "url"}
    if dest.exists() and any(dest.iterdir()):
        raise UserError(f"{dest} exists and was not made by tumorseg.fetch: remove it or set dest=")
    if dest.exists():
        dest.rmdir()
    archive = download(url, dest.with_name(dest.name + ".zip.part"))
    counts = extract(archive, dest)
    marker.write_text(json.dumps({"url": url, **counts}))
    archive.unlink()
    return counts


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="fetch")
@exit_on_user_error
def main(cfg: DictConfig) -> dict[str, int]:
    if not cfg.dest:
        raise UserError("dest is not set: dest=<folder> where the data set goes, e.g. dest=data/lung-ct-slices")
    counts = fetch(cfg.url or URL, Path(cfg.dest))
    print("Slices derived from the Medical Segmentation Decathlon Task06 Lung, CC-BY-SA 4.0.", file=sys.stderr)
    print(f"{cfg.dest}: train {counts['train']} slices / {counts['train_subjects']} subjects, "
          f"val {counts['val']} slices / {counts['val_subjects']} subjects")
    return counts


if __name__ == "__main__":
    main()
