"""What a command's input names, as subjects: a data part's labelled slices (evaluate) or image files (predict).

A subject means the same in every command: the first folder level below a part's images/ folder (a file
directly in images/ is a subject of its own), as the split rules use it. A folder outside a data part given to
predict (`input=scans/patient7`) is one subject, as if it sat in an images/ folder. A CT volume (a volume file,
a DICOM file, or a folder of one DICOM series) is one subject of its own: volume_sources.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tumorseg.data.decode import load_pair, read_gray
from tumorseg.data.layout import IMAGE_EXTS, PARTS, Sample, files_below, find_pairs, subject_of
from tumorseg.data.problems import Problems
from tumorseg.errors import UserError
from tumorseg.volumes.headers import has_volume_suffix, is_dicom_file, is_volume
from tumorseg.volumes.tasks import volume_name

# Folders of ground truth beside the images, never read as inputs: the slice layout's and the task folders'.
TRUTH_FOLDERS = ("masks", "labels", "labelsTr", "labelsTs")


@dataclass
class Subject:
    """One subject's slice files, in path order; masks (0/1, each at its image's size) when labelled."""

    name: str
    files: list[Path]
    masks: list[np.ndarray] | None = None
    images: list[np.ndarray] | None = None  # decoded already (a labelled part is read and checked up front)


def resolve_part(data_dir: str | None, split: str | None) -> Path:
    """The folder holding images/ and masks/: data_dir itself, or data_dir/<split> of a data set root."""
    if not data_dir:
        raise UserError("data_dir is not set: data_dir=FOLDER with images/ and masks/ (or a data set root and "
                        "split=val)")
    folder = Path(data_dir).expanduser()
    if split:
        if split not in PARTS:
            raise UserError(f"split={split} is not one of {list(PARTS)}")
        folder = folder / split
    if (folder / "images").is_dir():
        return folder
    if not split and any((folder / p / "images").is_dir() for p in PARTS):
        raise UserError(f"data_dir={folder} is a data set root: add split=val (or train, test)")
    raise UserError(f"{folder} has no images/ folder: point data_dir at a folder with images/ and masks/")


def group(items: list, subject_names: list[str]) -> dict[str, list]:
    """items grouped by their subject name, subjects in order of first appearance."""
    groups: dict[str, list] = {}
    for item, name in zip(items, subject_names):
        groups.setdefault(name, []).append(item)
    return groups


def labelled_subjects(part: Path, max_pixels: int, mask_threshold: int = 127) -> list[Subject]:
    """Every image and mask of a data part, decoded and checked (all problems reported at once), by subject."""
    problems = Problems()
    samples = find_pairs(part, problems)
    pairs: dict[Sample, tuple] = {}
    for sample in samples:
        try:
            pair = load_pair(sample, problems, mask_threshold, max_pixels=max_pixels)
            pairs[sample] = (pair.image, pair.mask)
        except UserError as err:
            problems.error(str(err))
    problems.raise_errors(part.parent)
    problems.log_warnings()
    kept = [s for s in samples if s in pairs]
    return [Subject(name, [s.image for s in group_samples], [pairs[s][1] for s in group_samples],
                    [pairs[s][0] for s in group_samples])
            for name, group_samples in group(kept, [s.subject for s in kept]).items()]


def subject_root(path: Path) -> Path:
    """The folder subjects are named below: the nearest images/ at or above path, else the folder above the
    input's folder (so an input folder outside a data part is one subject)."""
    folder = path if path.is_dir() else path.parent
    for candidate in (folder, *folder.parents):
        if candidate.name == "images":
            return candidate
    return folder.parent


def image_subjects(input_path: str | None) -> tuple[Path, list[Subject]]:
    """(base folder, subjects of the image files below it) of predict's input: an image, a folder, or a data part."""
    if not input_path:
        raise UserError("input is not set: input=IMAGE_OR_FOLDER")
    path = Path(input_path).expanduser()
    if path.is_file():
        base, files = path.parent, [path]
    elif path.is_dir():
        base = path / "images" if (path / "images").is_dir() else path
        files = [f for f in files_below(base) if f.suffix.lower() in IMAGE_EXTS and not f.name.startswith(".")
                 and "masks" not in f.relative_to(base).parts[:-1]]
        if not files:
            raise UserError(f"{base} holds no images ({', '.join(IMAGE_EXTS)})")
    else:
        raise UserError(f"input={path} does not exist: point it at an image or a folder of images")
    root = subject_root(base)
    names = [subject_of(f.relative_to(root).with_suffix("").as_posix()) for f in files]
    return base, [Subject(name, members) for name, members in group(files, names).items()]


def truth_beside(image: Path, max_pixels: int) -> np.ndarray | None:
    """The ground-truth mask of .../images/<rel> at .../masks/<rel>.<any ext>, as 0/1, if there is one."""
    parts = image.parts
    if "images" not in parts:
        return None
    i = len(parts) - 1 - parts[::-1].index("images")
    stem = Path(*parts[:i], "masks", *parts[i + 1:]).with_suffix("")
    for ext in IMAGE_EXTS:
        if stem.with_suffix(ext).is_file():
            try:
                return (read_gray(stem.with_suffix(ext), max_pixels) > 0).astype(np.uint8)
            except UserError:
                return None
    return None


@dataclass(frozen=True)
class VolumeSource:
    """One CT volume of predict's input: its name (its outputs are named by it), its file or DICOM series folder,
    and whether it is DICOM (then a DICOM SEG is written too)."""

    name: str
    path: Path
    dicom: bool


def file_volume_name(path: Path) -> str:
    """A volume file's name without its suffix (lung_001.nii.gz -> lung_001, IM0001.dcm -> IM0001)."""
    name = volume_name(path.name)
    return name if name != path.name else Path(name).stem


def _holds_dicom(folder: Path) -> bool:
    """Whether the folder itself (not below) holds DICOM files."""
    return any(is_dicom_file(f) for f in sorted(folder.iterdir()))


def volume_sources(input_path: str | None, series: str | None = None) -> list[VolumeSource] | None:
    """The volumes predict's input names, or None when it names 2D images (a PNG, a folder of slices).

    A volume file or DICOM file is one volume; a folder that holds DICOM files is its series; any other folder
    gives every volume file and every DICOM folder below it (truth folders such as labels/ left out), each named
    by its path below the input. A folder that holds both volumes and 2D images is refused.
    """
    if not input_path:
        raise UserError("input is not set: input=IMAGE_VOLUME_OR_FOLDER")
    path = Path(input_path).expanduser()
    if path.is_file():
        sources = [VolumeSource(file_volume_name(path), path, is_dicom_file(path))] if is_volume(path) else None
    elif path.is_dir() and _holds_dicom(path):
        sources = [VolumeSource(path.resolve().name, path, True)]
    elif path.is_dir():
        sources = _volumes_below(path)
    else:
        return None  # image_subjects names the missing input
    if series is not None and not any(s.dicom for s in sources or []):
        raise UserError(f"series={series} chooses a series of a DICOM folder, and input={path} is none: drop series=")
    return sources


def _volumes_below(folder: Path) -> list[VolumeSource] | None:
    """Every volume file and DICOM series folder below folder (outside truth folders), by name; None when none."""
    files = [f for f in files_below(folder) if not f.name.startswith(".")
             and not set(f.relative_to(folder).parts[:-1]) & set(TRUTH_FOLDERS)]
    dicom_folders = sorted({f.parent for f in files if is_dicom_file(f)})
    sources = [VolumeSource(f.relative_to(folder).with_name(file_volume_name(f)).as_posix(), f, False)
               for f in files if has_volume_suffix(f) and not is_dicom_file(f)]
    sources += [VolumeSource(d.relative_to(folder).as_posix(), d, True) for d in dicom_folders]
    if not sources:
        return None
    images = [f for f in files if f.suffix.lower() in IMAGE_EXTS]
    if images:
        raise UserError(f"{folder} holds both volumes ({sources[0].path}) and 2D images ({images[0]}): point "
                        f"input= at a folder of one kind")
    names = [s.name for s in sources]
    twice = next((n for n in names if names.count(n) > 1), None)
    if twice:
        both = " and ".join(str(s.path) for s in sources if s.name == twice)
        raise UserError(f"{folder} holds two volumes named {twice} ({both}): keep one")
    return sorted(sources, key=lambda s: s.name)
