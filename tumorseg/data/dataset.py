"""Slices decoded once into a uint8 cache, then augmented and turned into tensors per item."""

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch.utils.data import Dataset

from tumorseg.data.context import context_table
from tumorseg.data.decode import Pair, load_pair
from tumorseg.data.layout import Sample
from tumorseg.data.problems import Problems
from tumorseg.errors import UserError
from tumorseg.data.preprocessing import Preprocessing, resize_mask


class SegDataset(Dataset):
    """(image, mask, subject id): image CxHxW normalized float (C = 1 + 2 * context_slices),
    mask 1xHxW in {0, 1}, id an int."""

    def __init__(
        self,
        samples: Sequence[Sample],
        image_size: int,
        transform: Callable | None = None,
        mean: float = 0.5,
        std: float = 0.25,
        problems: Problems | None = None,
        mask_threshold: int = 127,
        strict: bool = False,
        threads: int = 4,
        context_slices: int = 0,
    ):
        """Decodes every pair; a faulty one is recorded in `problems` and left out (raises without one)."""
        collect = problems if problems is not None else Problems()
        self.preprocessing = Preprocessing(image_size, mean, std, context_slices)
        pairs: dict[int, Pair] = {}
        native: dict[int, tuple[int, int]] = {}

        def load(i: int) -> None:
            try:
                pair = load_pair(samples[i], collect, mask_threshold, strict)
                native[i] = pair.image.shape[::-1]
                pairs[i] = Pair(self.preprocessing.resize(pair.image), resize_mask(pair.mask, image_size))
            except UserError as err:
                collect.error(str(err))

        # Decode every file once, up front: later epochs (and forked workers) read the cache.
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(load, range(len(samples))))
        if problems is None and collect.errors:
            collect.raise_errors()
        keep = sorted(pairs)
        self.sizes = [native[i] for i in keep]  # (width, height) of the files
        self.samples = [samples[i] for i in keep]
        self.subject_names = sorted({s.subject for s in self.samples})
        ids = {name: i for i, name in enumerate(self.subject_names)}
        self.subject_ids = [ids[s.subject] for s in self.samples]
        self.transform = transform
        empty = np.empty((0, image_size, image_size), np.uint8)
        self.images = np.stack([pairs[i].image for i in keep]) if keep else empty
        self.masks = np.stack([pairs[i].mask for i in keep]) if keep else empty
        # Neighbours are looked up among this part's slices only: a split never leaks through them.
        self.context = context_table([(s.subject, s.image) for s in self.samples], context_slices)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, int]:
        """key: an index, or (index, augmentation seed) from EpochShuffle for repeatable augmentation."""
        index, seed = key if isinstance(key, tuple) else (key, None)
        # H x W x C for albumentations, which moves the neighbours with slice K.
        image = self.images[index] if self.context.shape[1] == 1 else np.moveaxis(self.images[self.context[index]], 0, -1)
        x, y = item_tensors(image, self.masks[index], self.transform, seed, self.preprocessing)
        return x, y, self.subject_ids[index]


def item_tensors(image: np.ndarray, mask: np.ndarray, transform: Callable | None, seed: int | None,
                 preprocessing: Preprocessing) -> tuple[torch.Tensor, torch.Tensor]:
    """One item: image (H x W, or H x W x C with neighbours, uint8) and mask through transform (seeded when seed is
    given), normalized: (C x H x W float, 1 x H x W in {0, 1})."""
    if transform is not None:
        if seed is not None and hasattr(transform, "set_random_seed"):
            transform.set_random_seed(seed)
        out = transform(image=image, mask=mask)
        image, mask = out["image"], out["mask"]
    x = preprocessing.normalize(image)
    y = torch.from_numpy(np.ascontiguousarray(mask)).float()
    return (x[None] if x.ndim == 2 else x.permute(2, 0, 1)), y[None]
