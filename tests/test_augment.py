from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate

from tests.conftest import CONF

AUGMENTS = sorted(p.stem for p in (CONF / "augment").glob("*.yaml"))


def square_pair(size=64):
    """An image whose bright square is exactly its mask."""
    mask = np.zeros((size, size), np.uint8)
    mask[20:44, 16:40] = 1
    return (mask * 180 + 30).astype(np.uint8), mask


@pytest.mark.parametrize("augment", AUGMENTS)
def test_mask_stays_binary_and_aligned(tiny_cfg, augment):
    transform = instantiate(tiny_cfg(f"augment={augment}").augment) or None
    # device_all leaves the loaders' images as they are: its transforms run on the training device
    # (tests/test_device_augment.py)
    assert (transform is None) == (augment in ("none", "device_all"))
    if transform is None:
        return
    rng_image, rng_mask = square_pair()
    np.random.seed(0)
    for _ in range(30):
        out = transform(image=rng_image, mask=rng_mask)
        image, mask = out["image"], out["mask"]
        assert image.shape == mask.shape == rng_image.shape
        assert set(np.unique(mask)) <= {0, 1}
        bright = image > 105
        iou = (bright & (mask > 0)).sum() / max(1, (bright | (mask > 0)).sum())
        assert iou > 0.85, f"{augment}: image and mask drifted apart (IoU {iou:.2f})"


def test_augment_changes_something(tiny_cfg):
    transform = instantiate(tiny_cfg("augment=all").augment)
    image, mask = square_pair()
    outs = [transform(image=image, mask=mask)["mask"] for _ in range(10)]
    assert any(not np.array_equal(o, mask) for o in outs)


def test_augment_options_are_the_documented_ones():
    assert AUGMENTS == ["all", "device_all", "elastic", "flip", "none", "rotate"]
    assert Path(CONF / "augment/none.yaml").is_file()
