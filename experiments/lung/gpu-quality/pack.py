"""Carry the lung CT slices to the GPU machine in parts, each small enough for one call of the device tool.

    python experiments/lung/gpu-quality/pack.py pack [ROOT] [FOLDER] [PARTS]   # -> FOLDER/lung-1.npz ... lung-PARTS.npz
    python experiments/lung/gpu-quality/pack.py unpack FOLDER TARGET          # every part found; already there: kept
    python experiments/lung/gpu-quality/pack.py check TARGET [FOLDER]         # exit 1 unless all 1613 slices are there

Defaults: ROOT ../shared/data/lung-ct-slices, FOLDER shared-pack/quality (git-ignored), PARTS 2. A call carries
the checkout (~22 MiB with the reference model files), the wheels (~4.4 MiB) and what `carry` names, 64 MiB in
all: the lossless pack of all 1613 slices (~52 MiB) does not fit beside them, half of it does. Each part holds whole
subjects, in the format of experiments/gpu/slices.py (lossless WebP images, bit-packed xz masks), whose pack and
unpack do the work; names.txt beside the parts lists every slice of the data set, for `check`.
"""

import importlib.util
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[3]
spec = importlib.util.spec_from_file_location("slices", REPO / "experiments" / "gpu" / "slices.py")
slices = importlib.util.module_from_spec(spec)
spec.loader.exec_module(slices)

PARTS = ("train", "val")


def subjects_of(root: Path) -> list[tuple[str, str, int]]:
    """(part, subject, slices) of every subject folder under root/{train,val}/images."""
    return [(part, folder.name, len(list(folder.glob("*.png"))))
            for part in PARTS for folder in sorted((root / part / "images").iterdir()) if folder.is_dir()]


def pack(root: Path, folder: Path, parts: int) -> None:
    """Subjects dealt to `parts` groups of about equal slice counts, each packed by slices.pack."""
    folder.mkdir(parents=True, exist_ok=True)
    groups: list[list[tuple[str, str, int]]] = [[] for _ in range(parts)]
    for subject in sorted(subjects_of(root), key=lambda s: -s[2]):
        min(groups, key=lambda g: sum(s[2] for s in g)).append(subject)
    names = sorted(p.relative_to(root).as_posix() for p in root.glob("*/images/*/*.png"))
    (folder / "names.txt").write_text("\n".join(names) + "\n")
    for i, group in enumerate(groups, 1):
        with tempfile.TemporaryDirectory() as tmp:
            # A tree of links to this group's subject folders: slices.pack reads a whole root.
            for part, subject, _ in group:
                for kind in ("images", "masks"):
                    link = Path(tmp) / part / kind / subject
                    link.parent.mkdir(parents=True, exist_ok=True)
                    link.symlink_to((root / part / kind / subject).resolve(), target_is_directory=True)
            slices.pack(Path(tmp), folder / f"lung-{i}.npz")


def unpack(folder: Path, target: Path) -> None:
    """Every part in folder unpacked into target (a part whose slices are all there already is skipped)."""
    for packed in sorted(folder.glob("lung-*.npz")):
        names = np.load(packed)["names"]
        if all((target / name).is_file() for name in names):
            print(f"{packed.name}: {len(names)} slices already in {target}")
            continue
        slices.unpack(packed, target)


def check(target: Path, folder: Path) -> bool:
    """All slices of names.txt (image and mask) are in target."""
    names = (folder / "names.txt").read_text().split()
    missing = [n for n in names if not (target / n).is_file() or not (target / n.replace("/images/", "/masks/", 1))
               .is_file()]
    print(f"{len(names) - len(missing)} of {len(names)} slices in {target}"
          + (f"; missing e.g. {missing[0]}: unpack the other part first" if missing else ""))
    return not missing


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    default_folder = REPO / "shared-pack" / "quality"
    if command == "pack":
        pack(Path(args[0] if args else REPO.parent / "shared" / "data" / "lung-ct-slices"),
             Path(args[1]) if len(args) > 1 else default_folder, int(args[2]) if len(args) > 2 else 2)
    elif command == "unpack":
        unpack(Path(args[0]), Path(args[1]))
    elif command == "check":
        sys.exit(0 if check(Path(args[0]), Path(args[1]) if len(args) > 1 else default_folder) else 1)
    else:
        sys.exit(f"unknown command {command}: pack, unpack or check")
