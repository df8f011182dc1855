"""Small, odd inputs for the fuzz campaign (tests/test_fuzz.py), each built from a spec of plain data.

A spec is a dict of numbers and strings (drawn by hypothesis, printed in a failure's report, replayable): the same
spec always builds the same files. Builders write under a folder they are given and return what they wrote.
"""

import gzip
import json
import shutil
import struct
import zipfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "tumorseg" / "reference"

# ---------------------------------------------------------------------------------------------------------------------
# volumes

VOLUME_FORMATS = (".nii.gz", ".nii", ".nrrd", ".mha")
DTYPES = ("uint8", "int8", "int16", "uint16", "int32", "uint32", "float32", "float64", "int64")
DIRECTIONS = ("identity", "flip", "turn", "swap", "oblique")
VOXELS = ("ct", "nan", "inf", "allnan", "constant", "noise", "vector")
# Changes to a NIfTI header after writing (offsets of the NIfTI-1 header): spacing (pixdim[1..3]) zero, negative or
# NaN; dims claiming a huge volume; a qform/sform that is not a rotation; no orientation (qform and sform codes 0).
HEADERS = (None, "zero_spacing", "negative_spacing", "nan_spacing", "huge_dims", "nan_sform", "no_orientation",
           "bad_magic")


def _direction(kind: str, seed: int) -> tuple[float, ...]:
    if kind == "identity":
        m = np.eye(3)
    elif kind == "flip":
        m = np.diag([-1.0, -1.0, 1.0])
    elif kind == "swap":
        m = np.array([[0.0, 1, 0], [1, 0, 0], [0, 0, -1]])
    elif kind == "turn":
        q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
        m = q * np.sign(np.linalg.det(q))
    else:  # oblique: axes neither orthogonal nor of unit length (ITK still takes it)
        m = np.array([[1.0, 0.3, 0], [0, 1, 0.2], [0.1, 0, 1]])
    return tuple(float(v) for v in m.ravel())


def volume_array(spec: dict) -> np.ndarray:
    """The voxels of a volume spec, as a (z, y, x) array (SimpleITK's order)."""
    x, y, z = spec["size"]
    rng = np.random.default_rng(spec.get("seed", 0))
    hu = rng.normal(-500, 400, size=(z, y, x))
    hu[:, y // 4: 3 * y // 4, x // 4: 3 * x // 4] = 40  # a body
    hu[z // 2, y // 2 - 1: y // 2 + 1, x // 2 - 1: x // 2 + 1] = 60  # a tiny "tumor"
    voxels = spec.get("voxels", "ct")
    if voxels == "constant":
        hu[:] = 7
    elif voxels == "noise":
        hu = rng.uniform(-3e4, 3e4, size=hu.shape)
    dtype = np.dtype(spec.get("dtype", "int16"))
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        array = np.clip(hu, info.min, info.max).astype(dtype)
    else:
        array = hu.astype(dtype)
        if voxels == "nan":
            array.flat[rng.integers(0, array.size, size=max(1, array.size // 50))] = np.nan
        elif voxels == "inf":
            array.flat[rng.integers(0, array.size, size=max(1, array.size // 50))] = np.inf
            array.flat[0] = -np.inf
        elif voxels == "allnan":
            array[:] = np.nan
    return array


def volume_image(spec: dict, array: np.ndarray | None = None) -> sitk.Image:
    array = volume_array(spec) if array is None else array
    if spec.get("voxels") == "vector":  # two components a voxel (e.g. a colour or a vector field)
        image = sitk.GetImageFromArray(np.stack([array, array], axis=-1), isVector=True)
    else:
        image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in spec.get("spacing", (0.7, 0.7, 2.5))))
    image.SetOrigin((12.5, -30.0, -200.0))
    image.SetDirection(_direction(spec.get("direction", "identity"), spec.get("seed", 0)))
    return image


def _patch_nifti(data: bytes, header: str) -> bytes:
    b = bytearray(data)
    if header == "zero_spacing":
        b[80:92] = struct.pack("<3f", 0.0, 0.0, 0.0)
    elif header == "negative_spacing":
        b[80:92] = struct.pack("<3f", -0.7, 0.7, -2.5)
    elif header == "nan_spacing":
        b[80:92] = struct.pack("<3f", float("nan"), 0.7, float("inf"))
    elif header == "huge_dims":
        b[42:48] = struct.pack("<3h", 32767, 32767, 32767)
    elif header == "nan_sform":
        b[280:328] = struct.pack("<12f", *[float("nan")] * 12)  # srow_x, srow_y, srow_z
        b[252:256] = struct.pack("<h", 0) + b[254:256]  # qform_code 0: the (NaN) sform is the geometry
    elif header == "no_orientation":
        b[252:256] = struct.pack("<2h", 0, 0)
    elif header == "bad_magic":
        b[344:348] = b"xx1\0"
    return bytes(b)


def write_volume_spec(spec: dict, path: Path, array: np.ndarray | None = None) -> Path:
    """Write a volume spec to path (its suffix the format), then apply its header patch and truncation."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = volume_image(spec, array)
    header = spec.get("header")
    if header and path.name.endswith((".nii", ".nii.gz")):
        raw = path.with_name(path.name.replace(".nii.gz", ".nii") + ".raw.nii")
        sitk.WriteImage(image, str(raw), False)
        data = _patch_nifti(raw.read_bytes(), header)
        raw.unlink()
        path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)
    else:
        sitk.WriteImage(image, str(path), False)
    truncate(path, spec.get("truncate"))
    return path


def truncate(path: Path, share: float | None) -> None:
    """Cut a file to `share` of its bytes (None: leave it)."""
    if share is not None:
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * share)])


def write_labels_like(spec: dict, path: Path, kind: str) -> Path:
    """A label volume for a volume spec: on its grid, or on another, or with odd values."""
    x, y, z = spec["size"]
    labels = np.zeros((z, y, x), np.uint8)
    labels[z // 2, y // 2 - 1: y // 2 + 1, x // 2 - 1: x // 2 + 1] = 1
    lspec = {k: v for k, v in spec.items() if k not in ("voxels", "header", "truncate")} | {"dtype": "uint8"}
    if kind == "other_grid":
        lspec["size"] = (x + 1, y, max(1, z - 1))
        labels = np.zeros((max(1, z - 1), y, x + 1), np.uint8)
    elif kind == "other_spacing":
        lspec["spacing"] = tuple(s * 2 for s in spec.get("spacing", (0.7, 0.7, 2.5)))
    elif kind == "float":
        lspec["dtype"] = "float32"
        labels = labels.astype(np.float32) * 0.5
        labels[0, 0, 0] = np.nan
    elif kind == "big_values":
        lspec["dtype"] = "int16"
        labels = labels.astype(np.int16) * 300 - 1
    elif kind == "empty":
        labels[:] = 0
    elif kind == "truncated":
        lspec["truncate"] = 0.5
    return write_volume_spec(lspec, path, labels)


# ---------------------------------------------------------------------------------------------------------------------
# DICOM series

DICOM_CHANGES = (None, "drop_middle", "same_position", "turned_slice", "truncated_slice", "junk_files", "two_series",
                 "empty_slice", "no_pixels")


def write_dicom_spec(spec: dict, folder: Path) -> Path:
    import pydicom

    from tumorseg.volumes.phantom import write_dicom_series

    size = tuple(spec["size"][:2]) + (max(2, spec["size"][2]),)
    write_dicom_series(folder, seed=spec.get("seed", 0), size=size)
    files = sorted(folder.glob("*.dcm"))
    change = spec.get("change")
    middle = files[len(files) // 2]
    if change == "drop_middle" and len(files) > 2:
        middle.unlink()
    elif change == "same_position":
        ds = pydicom.dcmread(files[1])
        ds.ImagePositionPatient = pydicom.dcmread(files[0]).ImagePositionPatient
        ds.save_as(files[1])
    elif change == "turned_slice":
        ds = pydicom.dcmread(middle)
        ds.ImageOrientationPatient = [0, 1, 0, 0, 0, 1]
        ds.save_as(middle)
    elif change == "truncated_slice":
        truncate(middle, 0.6)
    elif change == "junk_files":
        (folder / "DICOMDIR").write_bytes(b"\0" * 200)
        (folder / "notes.txt").write_text("not a slice\n")
        (folder / "sub").mkdir()
    elif change == "two_series":
        write_dicom_series(folder, seed=spec.get("seed", 0) + 1, size=size, description="another series")
    elif change == "empty_slice":
        middle.write_bytes(b"")
    elif change == "no_pixels":
        ds = pydicom.dcmread(middle)
        del ds.PixelData
        ds.save_as(middle)
    return folder


# ---------------------------------------------------------------------------------------------------------------------
# 2D slice folders

SLICE_CHANGES = ("empty_png", "text_as_png", "truncated_png", "png16", "color_jpg", "mask_size", "mask_values",
                 "missing_mask", "extra_mask", "dir_named_png", "hidden_file", "pixel_bomb", "odd_name",
                 "broken_symlink", "gif", "nan_tiff")


def pixel_bomb_png(width: int = 60000, height: int = 60000) -> bytes:
    """A PNG whose header claims width x height pixels over a few bytes of data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def write_slices(spec: dict, root: Path) -> Path:
    """A phantom data set of small slices (train/ and val/), then the spec's changes to val/ (and train/)."""
    from tumorseg.data.phantom import generate_phantom

    generate_phantom(root, train_subjects=spec.get("train_subjects", 2), val_subjects=1, slices=spec.get("slices", 3),
                     size=spec.get("size", 32), seed=spec.get("seed", 0))
    (root / ".phantom.json").unlink(missing_ok=True)  # a user's data set, not a generated one
    for change in spec.get("changes", ()):
        for part in ("val", "train") if spec.get("both_parts") else ("val",):
            _change_slices(root / part, change)
    return root


def _change_slices(part: Path, change: str) -> None:
    """One change to the first subject of part; the files it adds are named 9090-9099, beyond the phantom's slice
    indices (its slices, 20 to ~200, would otherwise be overwritten or collide)."""
    images, masks = part / "images", part / "masks"
    image = sorted(images.rglob("*.png"))[0]
    subject = image.parent
    mask = masks / image.relative_to(images)
    if change == "empty_png":
        (subject / "9090.png").write_bytes(b"")
        (masks / subject.name / "9090.png").write_bytes(b"")
    elif change == "text_as_png":
        (subject / "9091.png").write_text("this is not a picture\n")
    elif change == "truncated_png":
        truncate(image, 0.5)
    elif change == "png16":
        cv2.imwrite(str(subject / "9092.png"), (np.arange(32 * 32).reshape(32, 32) * 60).astype(np.uint16))
        cv2.imwrite(str(masks / subject.name / "9092.png"), np.zeros((32, 32), np.uint8))
    elif change == "color_jpg":
        cv2.imwrite(str(subject / "9093.jpg"), np.full((20, 24, 3), (10, 200, 30), np.uint8))
    elif change == "mask_size" and mask.exists():
        cv2.imwrite(str(mask), np.zeros((7, 5), np.uint8))
    elif change == "mask_values" and mask.exists():
        cv2.imwrite(str(mask), (np.arange(32 * 32).reshape(32, 32) % 256).astype(np.uint8))
    elif change == "missing_mask":
        mask.unlink(missing_ok=True)
    elif change == "extra_mask":
        cv2.imwrite(str(masks / subject.name / "9094.png"), np.zeros((32, 32), np.uint8))
    elif change == "dir_named_png":
        (subject / "9095.png").mkdir()
    elif change == "hidden_file":
        (subject / ".DS_Store").write_bytes(b"\0\1\2")
        (subject / "Thumbs.db").write_bytes(b"\0")
    elif change == "pixel_bomb":
        (subject / "9096.png").write_bytes(pixel_bomb_png())
        (masks / subject.name / "9096.png").write_bytes(pixel_bomb_png())
    elif change == "odd_name":
        shutil.copy(image, subject / "é ² [x]=1,2.png")
    elif change == "broken_symlink":
        (subject / "9097.png").symlink_to(subject / "nowhere.png")
    elif change == "gif":
        (subject / "9098.gif").write_bytes(b"GIF89a\1\0\1\0\0\0\0;")
    elif change == "nan_tiff":
        cv2.imwrite(str(subject / "9099.tiff"), np.full((16, 16), np.nan, np.float32))


# ---------------------------------------------------------------------------------------------------------------------
# MSD / nnU-Net task folders

TASK_CHANGES = (None, "truncated_label", "label_grid", "nan_image", "bad_json", "json_without_training",
                "float_label", "missing_label", "extra_files", "json_not_object", "truncated_image")


def write_task(spec: dict, root: Path) -> Path:
    """A small MSD or nnU-Net task of volume specs' cases, then the spec's change."""
    from tumorseg.volumes.phantom import write_msd_task, write_nnunet_task

    size = tuple(spec.get("size", (16, 16, 4)))
    writer = write_msd_task if spec.get("kind", "msd") == "msd" else write_nnunet_task
    writer(root, cases=spec.get("cases", 2), test_cases=0, seed=spec.get("seed", 0), size=size)
    images, labels = sorted((root / "imagesTr").iterdir()), sorted((root / "labelsTr").iterdir())
    change = spec.get("change")
    vspec = {"size": size, "seed": spec.get("seed", 0), "direction": "flip"}
    if change == "truncated_label":
        truncate(labels[0], 0.5)
    elif change == "truncated_image":
        truncate(images[-1], 0.3)
    elif change == "label_grid":
        write_labels_like(vspec, labels[0], "other_grid")
    elif change == "nan_image":
        write_volume_spec(vspec | {"dtype": "float32", "voxels": "nan"}, images[0])
    elif change == "float_label":
        write_labels_like(vspec, labels[0], "float")
    elif change == "bad_json":
        (root / "dataset.json").write_text('{"training": [')
    elif change == "json_without_training":
        (root / "dataset.json").write_text(json.dumps({"name": "x", "labels": {"0": "background"}}))
    elif change == "json_not_object":
        (root / "dataset.json").write_text("[1, 2, NaN]")
    elif change == "missing_label":
        labels[-1].unlink()
    elif change == "extra_files":
        (root / "imagesTr" / "._hidden.nii.gz").write_bytes(b"\0\0")
        (root / "labelsTr" / "README").write_text("labels\n")
    return root


# ---------------------------------------------------------------------------------------------------------------------
# run dirs (report), model files (ship, export), archives (fetch)

RUN_CHANGES = ("valid", "nan", "garbage", "list", "empty", "strings", "missing", "huge")


def write_runs(spec: dict, root: Path) -> Path:
    """Run dirs of finished runs as report reads them (metrics.json, .hydra/), each with its kind of metrics."""
    for i, kind in enumerate(spec.get("runs", ("valid",))):
        run = root / f"run{i}"
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "config.yaml").write_text(
            "approach:\n  name: split\nmodel:\n  _target_: tumorseg.models.unet.UNet\n  base_channels: 8\n"
            "data:\n  image_size: 64\ntrainer:\n  max_epochs: 2\n" if i % 2 == 0 else ": : not yaml [\n")
        metrics = {"val/dice": 0.5, "val/iou": 0.4, "test/dice": 0.45, "train/loss": 0.3, "epochs": 2, "minutes": 0.1}
        text = {
            "valid": json.dumps(metrics),
            "nan": json.dumps({k: float("nan") for k in metrics}),  # NaN as JSON writes it (not strict JSON)
            "garbage": "{not json",
            "list": json.dumps([1, 2, 3]),
            "empty": "",
            "strings": json.dumps({k: "x" for k in metrics}),
            "huge": json.dumps({k: 1e308 * 10 if k != "epochs" else 10 ** 40 for k in metrics}),
        }.get(kind)
        if text is not None:
            (run / "metrics.json").write_text(text)
    return root


MODEL_KINDS = ("shipped", "truncated", "garbage", "empty", "onnx", "zip", "pickle")


def write_model(kind: str, path: Path) -> Path:
    """A model file of a kind: a copy of the shipped one, or a damaged or foreign file under a model's name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shipped = REFERENCE / "lung_unet.pt"
    if kind in TINY_MODEL_KINDS:
        write_tiny_model(kind, path)
    elif kind == "shipped":
        shutil.copyfile(shipped, path)
    elif kind == "truncated":
        path.write_bytes(shipped.read_bytes()[: 3 * 1024 * 1024])
    elif kind == "garbage":
        path.write_bytes(bytes(range(256)) * 16)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "onnx":
        shutil.copyfile(REFERENCE / "lung_unet.int8.onnx", path)
    elif kind == "zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    elif kind == "pickle":  # a pickle that would run code: must be refused by weights_only loading
        path.write_bytes(b"\x80\x04\x95\x1d\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06getcwd\x94\x93\x94)R\x94.")
    return path


ARCHIVE_KINDS = ("valid", "garbage", "truncated", "traversal", "clash", "empty_zip", "bomb", "missing", "absolute")
FOLDER = "LungTumorDetectionAndSegmentation"


def write_archive(kind: str, path: Path) -> Path:
    """A zip archive of a kind for fetch url=file://...: the expected layout, or a damaged or hostile one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "missing":
        return path
    if kind == "garbage":
        path.write_bytes(b"PK\3\4" + bytes(100))
        return path
    png = cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes()
    top = f"repo-main/{FOLDER}"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        if kind != "empty_zip":
            for part in ("train", "val"):
                for sub in ("images", "masks"):
                    z.writestr(f"{top}/{part}/{sub}/Subject_1/0.png", png)
        if kind == "traversal":
            z.writestr(f"{top}/train/images/../../../../escape.png", png)
        elif kind == "absolute":
            z.writestr(f"/{top}/train/images/abs.png", png)
        elif kind == "clash":
            z.writestr(f"{top}/val/images/Subject_2", b"a file where a folder goes")
            z.writestr(f"{top}/val/images/Subject_2/0.png", png)
        elif kind == "bomb":
            z.writestr(f"{top}/train/images/Subject_1/1.png", b"\0" * (4 << 20))
    if kind == "truncated":
        truncate(path, 0.6)
    return path


def tiny_model_dict(crops: dict | None = None, seed: int = 0) -> dict:
    """A small model file's content (a 2-level U-Net at 32 x 32, random weights): the shipped model's run config with
    a tiny net, and data.crops set for a crop model (stage 2 of a two-stage pipeline)."""
    import torch

    from tumorseg.models import build_net

    config = torch.load(REFERENCE / "lung_unet.pt", weights_only=True)["hyper_parameters"]["run_config"]
    config["model"].update(base_channels=4, depth=2, flat_steps=0)
    config["data"].update(image_size=32, crops={"size": 16, "input_size": 32, "margin": 2, "negatives": 1.0,
                                                "proposals_from": None, "proposal_threshold": 0.2} if crops else None)
    torch.manual_seed(seed)
    weights = {f"net.{k}": v for k, v in build_net(config["model"]).state_dict().items()}
    return {"tumorseg_format": 1, "state_dict": weights, "hyper_parameters": {"run_config": config},
            "inference": {"threshold": 0.5, "tta": False, "seed_threshold": 0.0}}


TINY_MODEL_KINDS = ("tiny", "crop", "two_stage")


def write_tiny_model(kind: str, path: Path) -> Path:
    """tiny: a whole-image model; crop: a crop model; two_stage: a whole-image model with a crop model as stage 2."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    content = tiny_model_dict(crops=kind == "crop")
    if kind == "two_stage":
        stage2 = tiny_model_dict(crops=True, seed=1)
        content["stage2"] = {k: v for k, v in stage2.items() if k != "tumorseg_format"}
    torch.save(content, path)
    return path


# ---------------------------------------------------------------------------------------------------------------------
# compare's sides (evaluate outputs, runs, CV sweeps, results files, globs) and rule files

COMPARE_SIDES = ("cv_evaluate", "cv_evaluate", "evaluate", "run", "cv_sweep", "metrics_file", "glob", "list",
                 "empty_folder", "missing", "broken_json", "nan_figures", "missing_keys", "not_object", "fewer_folds",
                 "other_subjects", "no_fold_names", "strings", "volumes", "null_dice", "fold_twice", "bad_record",
                 "empty_subjects", "huge", "other_data", "nan_subject", "above_one")
RULE_KINDS = (None, "valid", "valid", "strict", "malformed", "wrong_type", "unknown_key", "nan", "negative", "empty",
              "list", "folds_unknown", "folds_bool", "binary", "inf", "huge", "folds_empty", "null_values")
SUBJECTS = ("s1", "s2", "s3")


def evaluate_metrics(dice: dict, whole: float, n_images: int = 6) -> dict:
    """metrics.json as tumorseg evaluate writes it for slices: pooled figures, settings, data_dir, subjects."""
    return {"dice": whole, "dice_per_subject": sum(dice.values()) / max(len(dice), 1), "n_images": n_images,
            "n_subjects": len(dice), "threshold": 0.3, "data_dir": "data/val", "ckpt_path": "model.pt",
            "subjects": {name: {"dice": d, "precision": d, "recall": d, "n_images": 2} for name, d in dice.items()}}


def _write_json(path: Path, content) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def _run_record(run: Path, fold: int | None) -> None:
    approach = f"approach:\n  name: cv\n  k: 3\n  fold: {fold}\n" if fold is not None else "approach:\n  name: split\n"
    _write_json(run / ".hydra" / "config.yaml", approach)


def write_compare_side(kind: str, folder: Path, gain: float) -> str:
    """One side of compare (its results under folder) as the option's value: a path, a glob pattern or a list."""
    dice = {name: 0.4 + 0.1 * i + gain for i, name in enumerate(SUBJECTS)}
    folds = ("0", "1", "2")
    if kind in ("cv_evaluate", "fewer_folds", "other_subjects", "null_dice", "empty_subjects", "huge", "other_data",
                "nan_subject", "above_one"):
        for fold in folds[:2] if kind == "fewer_folds" else folds:
            figures = evaluate_metrics(dice, 0.5 + gain)
            if kind == "other_subjects" and fold == "1":
                figures = evaluate_metrics({"x9": 0.5, **dice}, 0.5)
            elif kind == "null_dice":
                figures["subjects"]["s1"]["dice"] = None
            elif kind == "empty_subjects":
                figures["subjects"] = {}
            elif kind == "huge":
                figures["dice"] = 1e308
                figures["subjects"]["s2"]["dice"] = -1e308
            elif kind == "other_data":
                figures["n_images"] = 99
            elif kind == "nan_subject" and fold == "1":  # one subject's Dice NaN, the whole-image Dice infinite
                figures["subjects"]["s2"]["dice"], figures["dice"] = float("nan"), float("inf")
            elif kind == "above_one":
                figures["subjects"]["s3"]["dice"] = 1.5
            _write_json(folder / f"fold{fold}" / "metrics.json", figures)
        return str(folder)
    if kind == "evaluate":
        return str(_write_json(folder / "metrics.json", evaluate_metrics(dice, 0.5 + gain)).parent)
    if kind == "run":
        _write_json(folder / "metrics.json", {"test/dice": 0.5 + gain, "test/dice_per_subject": 0.4 + gain})
        _run_record(folder, None)
        return str(folder)
    if kind == "cv_sweep":
        for i in range(3):
            _write_json(folder / str(i) / "metrics.json", {"test/dice": 0.5 + gain, "test/dice_per_subject": 0.4})
            _run_record(folder / str(i), i)
        return str(folder)
    if kind == "metrics_file":
        return str(_write_json(folder / "metrics_t0.3.json", evaluate_metrics(dice, 0.5)))
    if kind in ("glob", "list", "fold_twice"):
        paths = [_write_json(folder / f"ensemble-fold{f}.json", evaluate_metrics(dice, 0.5 + gain)) for f in folds]
        if kind == "fold_twice":  # fold 1 in two files
            paths.append(_write_json(folder / "again" / "fold1.json", evaluate_metrics(dice, 0.5)))
        return str(folder / "ensemble-fold*.json") if kind == "glob" else f"[{','.join(map(str, paths))}]"
    if kind == "empty_folder":
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder)
    if kind == "missing":
        return str(folder / "nowhere")
    if kind == "no_fold_names":
        for name in ("first", "second"):
            _write_json(folder / name / "metrics.json", evaluate_metrics(dice, 0.5))
        return str(folder)
    if kind == "volumes":
        cases = {f"case{i}": {"dice": d, "volume_ml": 1.0} for i, d in enumerate(dice.values())}
        _write_json(folder / "metrics.json", {"dice_per_case": 0.5, "data": "x", "label": [1], "cases": cases})
        return str(folder)
    if kind == "bad_record":
        _write_json(folder / "metrics.json", {"test/dice": 0.5, "test/dice_per_subject": 0.4})
        _write_json(folder / ".hydra" / "config.yaml", "approach: [unclosed\n")
        return str(folder)
    broken = {"broken_json": '{"dice": 0.5, "subjects": {', "not_object": "[1, 2, NaN]",
              "nan_figures": json.dumps(evaluate_metrics({n: float("nan") for n in SUBJECTS}, float("nan"))),
              "missing_keys": json.dumps({"val/dice": 0.5}),
              "strings": json.dumps(evaluate_metrics(dice, 0.5) | {"dice": "0.5", "subjects": {"s1": {"dice": "high"}}})
              }[kind]
    _write_json(folder / "fold0" / "metrics.json", broken)
    _write_json(folder / "fold1" / "metrics.json", evaluate_metrics(dice, 0.5))
    return str(folder)


def write_rule(kind: str, path: Path) -> Path:
    """A decision rule file of a kind: valid, or malformed, of wrong types, unknown keys, NaN, negative ..."""
    text = {
        "valid": "folds: [0, 1, 2]\nmin_per_subject_gain: 0.01\nmin_folds_better: 2\n",
        "strict": "min_per_subject_gain: 0.0\nmin_whole_image_gain: 0.0\nmin_folds_better: 3\n",
        "malformed": "min_per_subject_gain: [0.01\n  : :\n",
        "wrong_type": "min_per_subject_gain: high\nmin_folds_better: 1.5\n",
        "unknown_key": "min_per_subject_gain: 0.01\nmin_dice: 0.8\n",
        "nan": "min_per_subject_gain: .nan\nmin_whole_image_gain: .nan\n",
        "negative": "min_per_subject_gain: -0.5\nmin_folds_better: -1\n",
        "empty": "",
        "list": "- min_per_subject_gain: 0.01\n",
        "folds_unknown": "folds: [7, x]\nmin_per_subject_gain: 0.01\n",
        "folds_bool": "folds: [true]\nmin_folds_better: 1\n",
        "binary": "\xff\xfe\x00min",
        "inf": "min_per_subject_gain: .inf\nmin_whole_image_gain: -.inf\n",
        "huge": "min_folds_better: 100000000000000000000000\nmin_per_subject_gain: 1e400\n",
        "folds_empty": "folds: []\nmin_per_subject_gain: 0.0\n",
        "null_values": "min_per_subject_gain: null\nfolds: null\n",
    }[kind]
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "binary":
        path.write_bytes(text.encode("latin-1"))
    else:
        path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------------------------------------
# page folders (serve) and what export format=web finds at its output

PAGE_KINDS = ("page", "page", "missing", "file", "not_a_page", "empty", "symlink", "odd_name")


def write_page(kind: str, folder: Path) -> Path:
    """A folder for tumorseg serve: a page folder (index.html, model.json, model.onnx), or something that is not."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    if kind == "missing":
        return folder
    if kind == "file":
        folder.write_text("<html></html>\n")
        return folder
    target = folder.with_name(folder.name + "-target") if kind == "symlink" else folder
    if kind == "odd_name":
        target = folder = folder.with_name("pàge [1],x=2")
    target.mkdir()
    if kind != "empty":
        (target / "index.html").write_text("<!doctype html><title>page</title>\n")
    if kind in ("page", "symlink", "odd_name"):
        (target / "model.json").write_text(json.dumps({"model": "model.onnx"}))
        shutil.copyfile(REFERENCE / "lung_unet.int8.onnx", target / "model.onnx")
    if kind == "symlink":
        folder.symlink_to(target, target_is_directory=True)
    return folder


WEB_OUTPUTS = ("new", "new", "empty_dir", "page_dir", "file", "symlink_dir", "onnx_name")


def prepare_web_output(kind: str, out: Path, sentinel: Path) -> Path:
    """export format=web's output=DIR as a case finds it: new, an empty folder, an earlier page, a file at DIR, a
    link to a folder outside (the sentinel's), a name ending .onnx."""
    page = out / ("page.onnx" if kind == "onnx_name" else "page")
    out.mkdir(parents=True, exist_ok=True)
    if kind == "empty_dir":
        page.mkdir()
    elif kind == "page_dir":
        write_page("page", page)
    elif kind == "file":
        page.write_text("planted page\n")
    elif kind == "symlink_dir":
        page.symlink_to(sentinel / "inner", target_is_directory=True)
    return page
