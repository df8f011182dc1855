"""A page folder: index.html and the page's ES modules, the npm files it loads, the model as ONNX and model.json.

model.json states what the page runs exactly as the model file states it (preprocessing, threshold, TTA, the 3D
steps), plus what the page itself decides (its default TTA, the limits it refuses a scan above), so that the page
never guesses; the page reads nothing else from the server.
"""

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from tumorseg.errors import UserError
from tumorseg.files.output_files import OutputFiles

if TYPE_CHECKING:  # torch, which model_file loads, would make `tumorseg serve` start seconds later
    from tumorseg.inference.model_file import ModelFile

PAGE = Path(__file__).resolve().parent / "page"
VENDOR = Path(__file__).resolve().parent / "vendor"
# What the page loads from vendor/ (make web-vendor copies them from node_modules/): onnxruntime-web's WASM build,
# NiiVue's ESM bundle and dcm2niix's WASM build (DICOM series, JPEG-compressed ones included).
VENDOR_FILES = ("onnxruntime-web/ort.wasm.min.mjs", "onnxruntime-web/ort-wasm-simd-threaded.mjs",
                "onnxruntime-web/ort-wasm-simd-threaded.wasm", "niivue/index.js", "dcm2niix/index.jpeg.js",
                "dcm2niix/worker.jpeg.js", "dcm2niix/dcm2niix.jpeg.js", "dcm2niix/dcm2niix.jpeg.wasm")
MODEL_NAME = "model.onnx"
# A browser tab holds the scan, its 8-bit slices and the mask at once; above this many voxels the page refuses the
# scan in one message rather than let the tab run out of memory (a 512 x 512 x 1000 CT is 2.6e8).
PAGE_MAX_VOXELS = 300_000_000
# The page's default TTA: none. The model file's affine TTA takes 10 passes of the net per slice (flip 2): at the
# ~10 slices/s of the shipped int8 net in WASM a 300-slice scan would take 5 minutes instead of 30 s; flip is offered
# on the page as a choice (docs/web.md).
PAGE_TTA = False


def page_files() -> list[Path]:
    """The page's own files (relative to PAGE): index.html and its ES modules."""
    return sorted(p.relative_to(PAGE) for p in PAGE.rglob("*") if p.is_file() and p.suffix in (".html", ".js", ".css"))


def vendor_files() -> list[Path]:
    """The npm files the page loads (relative to VENDOR), refused in one line when the build step has not run."""
    missing = [name for name in VENDOR_FILES if not (VENDOR / name).is_file()]
    if missing:
        raise UserError(f"the browser page's npm files are missing from {VENDOR} ({missing[0]}, ...): run `make "
                        f"web-vendor` in the tumorseg checkout (npm ci, then the copy), or install a wheel built by "
                        f"`make wheel`")
    return [Path(name) for name in VENDOR_FILES]


def model_settings(model: "ModelFile", max_voxels: int = PAGE_MAX_VOXELS) -> dict:
    """model.json: how the page runs the ONNX model, as its file states it (model: read from the .onnx copied)."""
    from tumorseg.inference.model_file import FORMAT_VERSION

    prep = model.preprocessing
    return {
        "format_version": FORMAT_VERSION,
        "model": MODEL_NAME,
        "precision": model.onnx_precision,
        "source": model.source,
        "members": model.members,
        # a volume's slices to 0..255 from their own min..max (window null) or through the model's HU window, as
        # tumorseg predict reads them; resized with OpenCV's INTER_AREA to image_size; (x / 255 - mean) / std;
        # context_slices neighbours as channels
        "preprocessing": {**prep.as_dict(), "orientation": "RAS"},
        "threshold": model.stored.threshold,
        "tta": {"model_file": model.stored.tta, "page_default": PAGE_TTA, "page_offers": [False, True]},
        "postprocess": {"seed_threshold": model.stored.seed_threshold, "largest_3d": False, "min_size": 0},
        "limits": {"max_voxels": max_voxels},
    }


def claim_folder(out: Path, overwrite: bool) -> OutputFiles:
    """The output folder's writer; an existing non-empty folder is refused unless overwrite=true."""
    if out.exists() and not out.is_dir():
        raise UserError(f"output={out} is a file: name a folder for the page, e.g. output={out.with_suffix('')}-web")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UserError(f"output={out} is a folder that is not empty: choose a new folder, or add overwrite=true to "
                        f"replace the page's files in it")
    return OutputFiles(out, overwrite=overwrite)


def write_page_folder(out: Path, model: "ModelFile", onnx: Path, overwrite: bool = False) -> list[Path]:
    """Write the page folder at out: the page, vendor/, model.onnx (a copy of onnx, whose ModelFile is model) and
    model.json; every file claimed first, then each written in one step. Returns the files written."""
    written = claim_folder(out, overwrite)
    sources = {out / name: PAGE / name for name in page_files()}
    sources.update({out / "vendor" / name: VENDOR / name for name in vendor_files()})
    sources[out / MODEL_NAME] = onnx
    settings = out / "model.json"
    written.claim([*sources, settings])
    for target, source in sources.items():
        with written.writing(target) as temp:
            shutil.copyfile(source, temp)
    written.text(settings, json.dumps(model_settings(model), indent=2) + "\n")
    return [*sources, settings]


def is_page_folder(folder: Path) -> bool:
    """Whether folder holds a page folder (index.html, model.json and the model)."""
    return all((folder / name).is_file() for name in ("index.html", "model.json", MODEL_NAME))
