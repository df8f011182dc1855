"""CT-volume task folders as the field lays them out: the Medical Segmentation Decathlon's and nnU-Net v2's raw
layout (dataset.json, imagesTr/, labelsTr/), their cases and labels; and the volume options shared by convert,
predict and evaluate.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from tumorseg.errors import UserError
from tumorseg.volumes.headers import read_header, same_grid


@dataclass(frozen=True)
class Case:
    """One training case of a task: its name (the subject folder) and its image and label files."""

    name: str
    image: Path
    label: Path


def read_dataset_json(root: Path) -> tuple[dict, Path]:
    """The task's dataset.json as a dict, and its path."""
    path = root / "dataset.json"
    if not path.is_file():
        raise UserError(f"{path} is missing: input= names an MSD or nnU-Net v2 task folder (dataset.json, "
                        f"imagesTr/, labelsTr/)")
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{path} cannot be read as JSON ({err}): fix or replace the file") from None
    if not isinstance(meta, dict) or "labels" not in meta or not isinstance(meta["labels"], dict):
        raise UserError(f"{path} has no \"labels\" object: it is not an MSD or nnU-Net v2 dataset.json")
    return meta, path


def one_channel(channels, path: Path, key: str) -> None:
    """Refuse a task whose images have more than one channel (convert writes gray CT slices)."""
    if isinstance(channels, dict) and len(channels) > 1:
        raise UserError(f"{path}: \"{key}\" lists {len(channels)} channels: convert takes one-channel (CT) tasks")


def msd_cases(root: Path, meta: dict, path: Path) -> list[Case]:
    """The "training" entries of an MSD dataset.json; a case is named by its image file."""
    one_channel(meta.get("modality"), path, "modality")
    entries = meta.get("training")
    if not isinstance(entries, list) or not all(isinstance(e, dict) and {"image", "label"} <= set(e) for e in entries):
        raise UserError(f"{path}: \"training\" must be a list of {{\"image\": ..., \"label\": ...}}: fix the file")
    return [Case(volume_name(Path(e["image"]).name), root / e["image"], root / e["label"]) for e in entries]


def nnunet_cases(root: Path, meta: dict, path: Path) -> list[Case]:
    """Every labelsTr/<case><file_ending> with its imagesTr/<case>_0000<file_ending>."""
    one_channel(meta.get("channel_names"), path, "channel_names")
    ending = meta.get("file_ending")
    if not isinstance(ending, str) or not ending.startswith("."):
        raise UserError(f"{path}: \"file_ending\" must be a suffix such as \".nii.gz\": fix the file")
    labels = sorted(p for p in (root / "labelsTr").glob(f"*{ending}") if not p.name.startswith("."))
    names = [p.name[: -len(ending)] for p in labels]
    return [Case(n, root / "imagesTr" / f"{n}_0000{ending}", p) for n, p in zip(names, labels)]


def volume_name(filename: str) -> str:
    """A file name without its volume suffix (lung_001.nii.gz -> lung_001)."""
    return re.sub(r"(\.nii\.gz|\.nii|\.nrrd|\.mha|\.mhd)$", "", filename, flags=re.IGNORECASE)


def task_cases(root: Path) -> tuple[list[Case], dict[int, str], Path]:
    """The task's cases, its labels (value -> name) and its dataset.json, checked before anything is written."""
    meta, path = read_dataset_json(root)
    nnunet = "channel_names" in meta or "file_ending" in meta
    cases = nnunet_cases(root, meta, path) if nnunet else msd_cases(root, meta, path)
    if not cases:
        raise UserError(f"{path} lists no training case with a label: check the task folder")
    names = [c.name for c in cases]
    if len(set(names)) < len(names):
        raise UserError(f"{path} names a case twice ({next(n for n in names if names.count(n) > 1)}): fix the file")
    for case in cases:
        for file in (case.image, case.label):
            if not file.is_file():
                raise UserError(f"{file} is missing (case {case.name} of {path}): add it or drop the case")
    return cases, label_names(meta["labels"], nnunet, path), path


def label_names(labels: dict, nnunet: bool, path: Path) -> dict[int, str]:
    """Label value -> name: MSD writes {"1": "tumor"}, nnU-Net {"tumor": 1} (or a region, a list of values)."""
    out = {}
    try:
        for key, value in labels.items():
            if nnunet:
                for v in value if isinstance(value, list) else [value]:
                    out.setdefault(int(v), key)
            else:
                out[int(key)] = str(value)
    except (TypeError, ValueError):
        raise UserError(f"{path}: \"labels\" holds a value that is not a whole number: fix the file") from None
    return out


def chosen_labels(option, known: dict[int, str], path: Path) -> tuple[int, ...]:
    """label=1 or label=[1,2] checked against dataset.json's labels."""
    values = list(option) if OmegaConf.is_list(option) or isinstance(option, (list, tuple)) else [option]
    listing = ", ".join(f"{v} {n}" for v, n in sorted(known.items()) if v)
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise UserError(f"label={option}: give a label value or a list of them, e.g. label=1 ({path}: {listing})")
    for v in values:
        if v == 0 or v not in known:
            raise UserError(f"label={v} is {'the background' if v == 0 else 'not a label of ' + str(path)}: "
                            f"choose from {listing}")
    return tuple(sorted(set(values)))


def check_grid(case: Case) -> None:
    """Refuse (from the headers) a label volume that is not on its image's grid."""
    image, label = read_header(case.image), read_header(case.label)
    if not same_grid(image, label):
        raise UserError(f"{case.label} does not lie on the grid of {case.image} (size, spacing, origin or direction "
                        f"differ: {label.GetSize()} vs {image.GetSize()}): resample the label onto its image")
