"""A synthetic chest CT volume in Hounsfield units with its labels, written as NIfTI, an MSD or nnU-Net v2 task,
or a DICOM series (tests and demos; deterministic by seed).

The volume: air (-1000) around a soft-tissue body (+40), two lungs (-800) that narrow towards both ends, a
vertebra (+700), vessels (+40..+200) that run as tubes through the lungs over many slices, and one or two
roughly spherical tumors (+30..+60, label 1) a few slices deep; label 2 is a lymph node between the lungs,
mostly on other slices than the tumors, so the choice of label changes which slices hold one. The grid is
anisotropic (0.7 x 0.7 x 2.5 mm), its origin non-zero and its direction a flip of x and y turned a little about
z, as real scans are stored, so code that drops the geometry shows. The writers take `orientation=` (an ITK
orientation code, e.g. "LPS" as DICOM scanners store slices) to store the same anatomy in another voxel order.

    python -m tumorseg.volumes.phantom OUT    # OUT/images/phantom.nii.gz and OUT/labels/phantom.nii.gz (demo)
"""

import json
import locale
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from pydicom.uid import generate_uid

from tumorseg.volumes.io import write_volume
from tumorseg.volumes.orientation import CANONICAL

SIZE = (64, 64, 24)  # x, y, z voxels
SPACING = (0.7, 0.7, 2.5)  # mm
ORIGIN = (23.1, 18.9, -312.5)  # mm
TURN = 8.0  # degrees about z, on top of the x and y flip
LABELS = {0: "background", 1: "tumor", 2: "node"}
NOISE_HU = 15.0


def direction(turn: float = TURN) -> tuple[float, ...]:
    """Row-major 3x3 direction cosines: x and y flipped (a right-handed frame, as DICOM needs), turned about z."""
    c, s = np.cos(np.deg2rad(turn)), np.sin(np.deg2rad(turn))
    return tuple((np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ np.diag([-1.0, -1.0, 1.0])).ravel())


def _disk(u: np.ndarray, v: np.ndarray, center, axes) -> np.ndarray:
    """Inside of an axis-aligned ellipse in normalized in-plane coordinates."""
    return ((u - center[0]) / axes[0]) ** 2 + ((v - center[1]) / axes[1]) ** 2 <= 1


def _ball(size, spacing, center, radius: float) -> tuple[tuple[slice, ...], np.ndarray]:
    """The bounding box of a ball (centre and radius in mm) in index space, and the ball's voxels inside it."""
    d2 = [((np.arange(n) + 0.5) * s - c) ** 2 for n, s, c in zip(size, spacing, center)]
    box = tuple(slice(int(np.argmax(d <= radius ** 2)), int(n - np.argmax(d[::-1] <= radius ** 2)))
                for d, n in zip(d2, size))
    dx, dy, dz = (d[b] for d, b in zip(d2, box))
    return box, dx[:, None, None] + dy[None, :, None] + dz[None, None, :] <= radius ** 2


def _spheres(rng: np.random.Generator, size, spacing, lungs) -> list[tuple[int, np.ndarray, float, float]]:
    """(label, centre in mm, radius in mm, HU) of the tumors (in a lung) and the node (between the lungs)."""
    nx, ny, nz = size
    field = min(nx * spacing[0], ny * spacing[1])
    out = []
    for _ in range(int(rng.integers(1, 3))):
        (lu, lv), (au, av) = lungs[int(rng.integers(0, 2))]
        u, v = lu + rng.uniform(-0.35, 0.35) * au, lv + rng.uniform(-0.35, 0.35) * av
        z = rng.uniform(0.3, 0.7) * nz
        out.append((1, np.array([(u + 1) / 2 * nx, (v + 1) / 2 * ny, z]), rng.uniform(0.08, 0.12) * field,
                    rng.uniform(30, 60)))
    tumor_z = np.mean([c[2] for _, c, _, _ in out])
    node_z = 0.15 * nz if tumor_z > nz / 2 else 0.85 * nz
    out.append((2, np.array([nx / 2, 0.56 * ny, node_z]), 0.07 * field, 50.0))
    return [(lab, c * np.array(spacing), r, hu) for lab, c, r, hu in out]


def phantom_arrays(size=SIZE, spacing=SPACING, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(HU int16, label uint8) arrays in (x, y, z) index order, shape `size`."""
    rng = np.random.default_rng(seed)
    nx, ny, nz = size
    u, v = np.meshgrid((np.arange(nx) + 0.5) / nx * 2 - 1, (np.arange(ny) + 0.5) / ny * 2 - 1, indexing="ij")
    lungs = [((side * 0.38, -0.05), (0.26, 0.45)) for side in (-1, 1)]
    vessels = [(rng.uniform(-0.3, 0.3, 2), rng.normal(0, 0.015, 2), rng.uniform(0.03, 0.05), rng.uniform(40, 200))
               for _ in range(int(rng.integers(6, 11)))]
    hu = np.full(size, -1000.0)
    for k in range(nz):
        taper = 1 - 0.35 * ((k - nz / 2) / (nz / 2)) ** 2  # lungs narrow towards both ends of the scan
        plane = np.where(_disk(u, v, (0, 0), (0.88, 0.72)), 40.0, -1000.0)
        lung_mask = np.zeros(plane.shape, bool)
        for (cu, cv), (au, av) in lungs:
            lung_mask |= _disk(u, v, (cu, cv), (au * taper, av * taper))
        plane[lung_mask] = -800.0
        for i, (start, drift, radius, value) in enumerate(vessels):
            cu, cv = lungs[i % 2][0][0] + start[0] + drift[0] * k, lungs[i % 2][0][1] + start[1] + drift[1] * k
            plane[_disk(u, v, (cu, cv), (radius, radius)) & lung_mask] = value
        plane[_disk(u, v, (0, -0.55), (0.12, 0.1))] = 700.0  # the direction's y axis points forward: spine at low y
        hu[:, :, k] = plane
    label = np.zeros(size, np.uint8)
    for lab, center, radius, value in _spheres(rng, size, spacing, lungs):
        box, inside = _ball(size, spacing, center, radius)
        hu[box][inside], label[box][inside] = value, lab
    hu += rng.normal(0, NOISE_HU, size)
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16), label


def as_image(array: np.ndarray, spacing=SPACING, origin=ORIGIN, turn: float = TURN) -> sitk.Image:
    """An (x, y, z)-ordered array as a sitk.Image of size array.shape with the phantom's geometry."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(o) for o in origin))
    image.SetDirection(direction(turn))
    return image


def phantom_volume(size=SIZE, spacing=SPACING, seed: int = 0,
                   orientation: str = CANONICAL) -> tuple[sitk.Image, sitk.Image]:
    """(CT in HU, int16; labels 0/1/2, uint8) as images on one grid: size `size` (x, y, z) as made, or the same
    voxels stored in another order (orientation: an ITK code such as "LPS"; flips and axis swaps only)."""
    hu, label = phantom_arrays(size, spacing, seed)
    image, label = as_image(hu, spacing), as_image(label, spacing)
    if orientation != CANONICAL:
        image, label = sitk.DICOMOrient(image, orientation), sitk.DICOMOrient(label, orientation)
    return image, label


def write_nifti(folder: str | os.PathLike, name: str, seed: int = 0, size=SIZE, spacing=SPACING,
                orientation: str = CANONICAL, suffix: str = ".nii.gz") -> tuple[Path, Path]:
    """Write `<name><suffix>` (CT) and `<name>_label<suffix>` into folder (any volume suffix); return both paths."""
    image, label = phantom_volume(size, spacing, seed, orientation)
    folder = Path(folder)
    return write_volume(image, folder / f"{name}{suffix}"), write_volume(label, folder / f"{name}_label{suffix}")


def case_names(cases: int, test_cases: int = 0) -> list[str]:
    """The phantom task's case names: training cases first, then test cases."""
    return [f"phantom_{i + 1:03d}" for i in range(cases + test_cases)]


def _write_task(root: Path, cases: int, test_cases: int, seed: int, size, image_name, meta: dict) -> Path:
    """Write phantom cases as imagesTr/, labelsTr/ and imagesTs/ (file names from image_name) and dataset.json."""
    for i, name in enumerate(case_names(cases, test_cases)):
        image, label = phantom_volume(size, SPACING, seed * 1000 + i)
        write_volume(image, root / ("imagesTr" if i < cases else "imagesTs") / image_name(name))
        if i < cases:
            write_volume(label, root / "labelsTr" / f"{name}.nii.gz")
    (root / "dataset.json").write_text(json.dumps(meta | {"numTraining": cases}, indent=2))
    return root


def write_msd_task(root: str | os.PathLike, cases: int = 3, test_cases: int = 1, seed: int = 0, size=SIZE) -> Path:
    """A Medical Segmentation Decathlon task folder: dataset.json, imagesTr/, labelsTr/, imagesTs/."""
    names = case_names(cases, test_cases)
    meta = {"name": "Phantom", "description": "synthetic chest CT (tumorseg.volumes.phantom)", "tensorImageSize": "3D",
            "modality": {"0": "CT"}, "labels": {str(k): v for k, v in LABELS.items()}, "numTest": test_cases,
            "training": [{"image": f"./imagesTr/{n}.nii.gz", "label": f"./labelsTr/{n}.nii.gz"} for n in names[:cases]],
            "test": [f"./imagesTs/{n}.nii.gz" for n in names[cases:]]}
    return _write_task(Path(root), cases, test_cases, seed, size, lambda n: f"{n}.nii.gz", meta)


def write_nnunet_task(root: str | os.PathLike, cases: int = 3, test_cases: int = 1, seed: int = 0, size=SIZE) -> Path:
    """An nnU-Net v2 raw dataset folder: imagesTr/<case>_0000.nii.gz, labelsTr/<case>.nii.gz, dataset.json."""
    meta = {"channel_names": {"0": "CT"}, "labels": {v: k for k, v in LABELS.items()}, "file_ending": ".nii.gz"}
    return _write_task(Path(root), cases, test_cases, seed, size, lambda n: f"{n}_0000.nii.gz", meta)


def _uid(*parts) -> str:
    """A UID that is the same for the same parts (a reproducible series)."""
    return generate_uid(entropy_srcs=["tumorseg.phantom3d", *map(str, parts)])


@contextmanager
def kept_locale():
    """Put the process locale back after the block: GDCM's DICOM writer leaves it at "C", after which Python's
    open() writes ASCII only (a summary.csv naming "².png" would fail)."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def write_dicom_series(folder: str | os.PathLike, seed: int = 0, size=SIZE, spacing=SPACING,
                       description: str = "phantom chest CT", orientation: str = CANONICAL) -> Path:
    """Write the phantom CT as one DICOM CT series (one file a slice, `s<seed>_<k>.dcm`); return the folder.

    The HU are stored as unsigned values with RescaleIntercept -1024 and slope 1; ImagePositionPatient,
    ImageOrientationPatient, PixelSpacing and SliceThickness carry the phantom's grid (orientation: as in
    phantom_volume; the slices stay the third axis, so give a code that keeps S or I last, e.g. "LPS").
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    image, _ = phantom_volume(size, spacing, seed, orientation)
    d = image.GetDirection()
    common = {
        "0008|0060": "CT", "0008|0008": "ORIGINAL\\PRIMARY\\AXIAL", "0008|103e": description,
        "0008|0020": "20000101", "0008|0030": "120000", "0010|0010": "Phantom^Chest", "0010|0020": f"PHANTOM{seed}",
        "0020|000d": _uid("study", seed), "0020|000e": _uid("series", seed, description),
        "0020|0052": _uid("frame", seed), "0020|0011": str(seed + 1),
        "0020|0037": "\\".join(f"{c:.10g}" for c in (d[0], d[3], d[6], d[1], d[4], d[7])),
        "0018|0050": f"{image.GetSpacing()[2]:g}", "0028|1052": "-1024", "0028|1053": "1",
    }
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()  # the UIDs above, not fresh random ones
    with kept_locale():
        for k in range(image.GetDepth()):
            position = image.TransformIndexToPhysicalPoint((0, 0, k))
            plane = image[:, :, k]
            for tag, value in {**common, "0008|0018": _uid("slice", seed, description, k), "0020|0013": str(k + 1),
                               "0020|0032": "\\".join(f"{p:.10g}" for p in position),
                               "0020|1041": f"{position[2]:.10g}"}.items():
                plane.SetMetaData(tag, value)
            writer.SetFileName(str(folder / f"s{seed}_{k + 1:04d}.dcm"))
            writer.Execute(plane)
    return folder


def write_demo_case(out: str | os.PathLike, name: str = "phantom") -> tuple[Path, Path]:
    """One phantom case for a demo: `out/images/<name>.nii.gz` and its labels at `out/labels/<name>.nii.gz`."""
    image, label = phantom_volume()
    out = Path(out)
    return (write_volume(image, out / "images" / f"{name}.nii.gz"),
            write_volume(label, out / "labels" / f"{name}.nii.gz"))


def main(argv: list[str] | None = None) -> None:
    """`python -m tumorseg.volumes.phantom OUT`: write the demo case and print its two paths."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m tumorseg.volumes.phantom OUT  (writes OUT/images/phantom.nii.gz, "
              "OUT/labels/phantom.nii.gz)", file=sys.stderr)
        sys.exit(2)
    for path in write_demo_case(args[0]):
        print(path)


if __name__ == "__main__":
    main()
