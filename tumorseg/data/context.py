"""2.5D input: slice K with its neighbours K-c..K+c of the same subject as extra channels.

A file's name is its slice index in the CT volume (`Subject_3/117.png`); a neighbour that is not
in the data (the run of slices ends, or a distant slice stands alone) is replaced by slice K.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tumorseg.errors import UserError
from tumorseg.data.layout import slice_index


def slice_number(path: Path) -> int:
    """The slice index a file name stands for (.../Subject_3/117.png -> 117)."""
    number = slice_index(path)
    if number is None:
        raise UserError(f"{path}: data.context_slices needs files named by their slice index "
                        f"(e.g. 117.png); rename the slices or set data.context_slices=0")
    return number


def context_table(files: Sequence[tuple[str, Path]], context_slices: int) -> np.ndarray:
    """N x (2c+1) item indices: for item i, the items holding slices K-c..K+c of its subject (i when missing).

    files: (subject, image file) per item, in item order.
    """
    if context_slices < 0:
        raise UserError(f"data.context_slices={context_slices} must be 0 (2D) or more")
    offsets = range(-context_slices, context_slices + 1)
    if context_slices == 0:
        return np.arange(len(files), dtype=np.int64)[:, None]
    keys = [(subject, slice_number(Path(path))) for subject, path in files]
    where = {key: i for i, key in enumerate(keys)}
    table = [[where.get((subject, k + d), i) for d in offsets] for i, (subject, k) in enumerate(keys)]
    return np.asarray(table, dtype=np.int64).reshape(len(files), len(offsets))
