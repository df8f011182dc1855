"""Turn an MSD or nnU-Net v2 task folder of CT volumes into slices in the data layout (PNG images and masks).

    tumorseg convert input=TASK_DIR output=DATA_ROOT [label=1 | label=[1,2]] [slices=labeled+5 | slices=all]
                     [val_cases=[CASE,...]] [preprocess.window=null | preprocess.window=[LEVEL,WIDTH]] [overwrite=false]

Slice k of a case goes to `<output>/<train|val>/images/<case>/<k>.png` (slices_of: the orientation and
per-slice scaling prediction uses) with its mask, 0/255, at `.../masks/<case>/<k>.png`. `labeled+N` keeps
every slice that holds the label and the first N without it in string order of their index (0, 1, 10, 100,
...), as the public lung slices were made. A finished case is recorded in `<output>/.convert/<case>.json` and
skipped by a rerun with the same settings; a case cut short is written again. Every folder convert writes into or
clears must be a real one below output= (tumorseg.files.output_files), checked for every case before the first write.
"""

import contextlib
import json
import re
import shutil
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from tumorseg import CONF_DIR
from tumorseg.data.layout import CONVERT_RECORDS
from tumorseg.data.preprocessing import hu_window
from tumorseg.errors import UserError, exit_on_user_error
from tumorseg.files.output_files import OutputFiles, check_apart, is_temp
from tumorseg.volumes.headers import read_limits
from tumorseg.volumes.io import read_volume, volume_files
from tumorseg.volumes.orientation import slice_stack, slices_of
from tumorseg.volumes.tasks import Case, check_grid, chosen_labels, task_cases
from tumorseg.writers.progress import progress

KINDS = ("images", "masks")


def extra_slices(option) -> int | None:
    """slices=all -> None (every slice); slices=labeled+N -> N (slices without the label to keep)."""
    text = str(option).strip()
    if text == "all":
        return None
    match = re.fullmatch(r"labeled(?:\+(\d+))?", text)
    if not match:
        raise UserError(f"slices={option}: choose slices=all or slices=labeled+N, e.g. slices=labeled+5")
    return int(match.group(1) or 0)


def pick_slices(labeled: np.ndarray, extra: int | None) -> list[int]:
    """Indices of the slices to write: all, or every labeled one and the first `extra` others by name."""
    if extra is None:
        return list(range(len(labeled)))
    free = sorted((k for k in range(len(labeled)) if not labeled[k]), key=str)[:extra]
    return sorted([k for k in range(len(labeled)) if labeled[k]] + free)


def case_slices(case: Case, labels: tuple[int, ...], extra: int | None, window: tuple[float, float] | None,
                limits: dict[str, int]) -> tuple[list[int], np.ndarray, np.ndarray]:
    """(slice indices, images K x H x W uint8, masks K x H x W 0/255) of the slices to write; limits: read_limits."""
    image, label = read_volume(case.image, **limits), read_volume(case.label, **limits)
    masks = np.isin(slice_stack(label), labels)
    ks = pick_slices(masks.any(axis=(1, 2)), extra)
    return ks, slices_of(image, window, str(case.image))[ks], masks[ks].astype(np.uint8) * 255


class Records:
    """What convert wrote for each case (`<output>/.convert/<case>.json`): settings, files, whether it finished.

    output: the places below output= (OutputFiles), through which every record is written and every path checked.
    """

    def __init__(self, out: Path):
        self.out, self.folder = out, out / CONVERT_RECORDS
        self.output = OutputFiles(out, overwrite=True)

    def path(self, case: str) -> Path:
        return self.folder / f"{case}.json"

    def read(self, case: str) -> dict:
        """The case's record, or an empty one (a record that cannot be read counts as none)."""
        try:
            record = json.loads(self.path(case).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return {}
        return record if isinstance(record, dict) else {}

    def write(self, case: str, settings: dict, files: list[Path], done: bool) -> None:
        """Replace the case's record in one step (an interrupted write leaves the old one)."""
        rel = sorted(f.relative_to(self.out).as_posix() for f in files)
        self.output.claim([self.path(case)])
        self.output.text(self.path(case), json.dumps({"settings": settings, "files": rel, "done": done}, indent=1))

    def owned(self, case: str) -> set[Path]:
        """The files a record says convert wrote for the case (only paths below output, whatever the record says)."""
        files = [Path(f) for f in self.read(case).get("files", []) if isinstance(f, str)]
        return {self.out / f for f in files if not f.is_absolute() and ".." not in f.parts}

    def finished(self, case: str, settings: dict) -> bool:
        """Whether the case was written completely with the same settings and its files are all there."""
        record = self.read(case)
        return (record.get("done") is True and record.get("settings") == settings
                and all((self.out / f).is_file() for f in record.get("files", [])))


def case_folders(out: Path, part: str, case: str) -> list[Path]:
    """The case's subject folders in one part: images/<case> and masks/<case>."""
    return [out / part / kind / case for kind in KINDS]


def foreign_files(out: Path, part: str, case: str, owned: set[Path]) -> list[Path]:
    """Files in the case's folders that convert did not write (a killed run's temporary files aside)."""
    found = []
    for folder in case_folders(out, part, case):
        found += sorted(p for p in folder.rglob("*") if not p.is_dir() and p not in owned and not is_temp(p)) \
            if folder.is_dir() else []
    return found


def write_case(out: Path, part: str, case: Case, settings: dict, records: Records,
               slices: tuple[list[int], np.ndarray, np.ndarray]) -> int:
    """Clear what the case held before (known to be convert's own, or overwrite=true), write its PNGs, record it."""
    ks, images, masks = slices
    files = {kind: [out / part / kind / case.name / f"{k}.png" for k in ks] for kind in KINDS}
    old = records.owned(case.name)
    records.write(case.name, settings, sorted(old | set(files["images"] + files["masks"])), done=False)
    for path in map(records.output.real, old):  # real: never through a link out of the output
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # the case's folder in a part it has left, now empty
            path.parent.rmdir()
    for folder in case_folders(out, part, case.name):
        shutil.rmtree(records.output.real(folder), ignore_errors=True)
    written = OutputFiles(out)
    written.claim(files["images"] + files["masks"])
    for kind, arrays in (("images", images), ("masks", masks)):
        for path, array in zip(files[kind], arrays):
            written.image(path, array)
    records.write(case.name, settings, files["images"] + files["masks"], done=True)
    return len(ks)


def validation_cases(option, cases: list[Case]) -> set[str]:
    """val_cases=[...] checked against the task's case names."""
    names = [str(v) for v in option] if OmegaConf.is_list(option) else ([str(option)] if option else [])
    known = {c.name for c in cases}
    for name in names:
        if name not in known:
            raise UserError(f"val_cases: {name} is not a case of the task: choose from {', '.join(sorted(known)[:8])}"
                            f"{', ...' if len(known) > 8 else ''}")
    return set(names)


def convert(cfg: DictConfig) -> dict:
    """Write every case not yet converted with these settings; return the counts."""
    if not cfg.input or not cfg.output:
        raise UserError("input= and output= are both needed: tumorseg convert input=<task folder> output=<data root>")
    root, out = Path(cfg.input).expanduser(), Path(cfg.output).expanduser()
    if not root.is_dir():
        raise UserError(f"input={root} is not a folder: name an MSD or nnU-Net v2 task folder")
    check_apart(out, [root])
    if out.exists() and not out.is_dir():
        raise UserError(f"output={out} is a file: name a folder for the data set")
    cases, known, dataset_json = task_cases(root)
    labels, extra = chosen_labels(cfg.label, known, dataset_json), extra_slices(cfg.slices)
    window, val = hu_window(cfg.preprocess.window), validation_cases(cfg.val_cases, cases)
    records, todo, skipped, limits = Records(out), [], 0, read_limits(cfg)
    for case in cases:
        part = "val" if case.name in val else "train"
        settings = {"image": str(case.image.resolve()), "label": str(case.label.resolve()), "part": part,
                    "labels": list(labels), "slices": str(cfg.slices), "window": list(window) if window else None}
        if records.finished(case.name, settings):
            skipped += 1
            continue
        owned = records.owned(case.name)
        records.output.check([*case_folders(out, part, case.name), *owned, records.path(case.name)])
        foreign = foreign_files(out, part, case.name, owned)
        if foreign and not cfg.overwrite:
            raise UserError(f"{foreign[0]} exists and was not written by convert ({len(foreign)} such file(s) in "
                            f"case {case.name}): choose another output=, or add overwrite=true to replace the case's "
                            f"folders")
        for path in (case.image, case.label):  # sizes and DICOM grids, before anything is written
            volume_files(path, **limits)
        check_grid(case)
        todo.append((case, part, settings))
    counts = {"cases": len(cases), "converted": len(todo), "skipped": skipped, "slices": 0, "train": 0, "val": 0}
    with progress(len(todo), f"converting {len(todo)} cases") as advance:
        for case, part, settings in todo:
            counts["slices"] += write_case(out, part, case, settings, records,
                                           case_slices(case, labels, extra, window, limits))
            counts[part] += 1
            advance()
    return counts


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="convert")
@exit_on_user_error
def main(cfg: DictConfig) -> dict:
    counts = convert(cfg)
    print(f"{cfg.output}: {counts['converted']} case(s) converted ({counts['train']} train, {counts['val']} val), "
          f"{counts['slices']} slices written, {counts['skipped']} case(s) already converted")
    return counts


if __name__ == "__main__":
    main()
