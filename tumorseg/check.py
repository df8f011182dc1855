"""Check a data set before training: every fault named with its file and fix, then a summary.

    python -m tumorseg.check data.root=FOLDER

Exit status 0 when the data set is usable, 2 when it is not.
"""

import sys
from collections import Counter
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig

from tumorseg import CONF_DIR
from tumorseg.data.datamodule import check_part
from tumorseg.data.dataset import SegDataset
from tumorseg.data.layout import PARTS, check_root, find_pairs
from tumorseg.data.problems import Problems
from tumorseg.errors import EXIT_USER_ERROR, UserError, exit_on_user_error


def summarize(part: str, dataset: SegDataset) -> str:
    """subjects, slices, slices with tumor, tumor share of a tumor slice, file sizes."""
    if not len(dataset):
        return f"{part}: no usable slice (the errors below say why)"
    areas = dataset.masks.reshape(len(dataset), -1).mean(axis=1)
    with_tumor = areas > 0
    share = f"median tumor {np.median(areas[with_tumor]):.2%} of a slice" if with_tumor.any() else "no tumor"
    sizes = ", ".join(f"{w}x{h} ({n})" for (w, h), n in Counter(dataset.sizes).most_common(3))
    return (f"{part}: {len(dataset.subject_names)} subjects, {len(dataset)} slices, {int(with_tumor.sum())} with tumor "
            f"({with_tumor.mean():.0%}), {share}; sizes {sizes}")


def check(data: DictConfig) -> tuple[list[str], Problems]:
    """Summary lines and the problems found in every part of the data set at data.root."""
    root = Path(data.root).expanduser()
    check_root(root)
    problems, lines = Problems(), []
    if not (root / "train" / "images").is_dir():
        problems.error(f"{root / 'train' / 'images'} is missing: training needs train/images and train/masks")
    for part in PARTS:
        if not (root / part).is_dir():
            continue
        try:
            samples = find_pairs(root / part, problems)
        except UserError as err:
            problems.error(str(err))
            continue
        dataset = SegDataset(samples, data.image_size, problems=problems, mask_threshold=data.mask_threshold,
                             strict=data.strict)
        check_part(part, dataset, problems)
        lines.append(summarize(part, dataset))
    return lines, problems


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="check")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    lines, problems = check(cfg.data)
    for line in lines:
        print(line)
    for line in problems.warning_lines():
        print(f"warning: {line}")
    for line in problems.errors:
        print(f"error: {line}", file=sys.stderr)
    if problems.errors:
        print(f"not usable: {len(problems.errors)} error(s) in {cfg.data.root}")
        sys.exit(EXIT_USER_ERROR)
    print(f"usable: {cfg.data.root}")


if __name__ == "__main__":
    main()
