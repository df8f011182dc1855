"""A shuffle that is a pure function of (seed, epoch), and hands each item its own augmentation seed.

Resuming a run from an epoch's checkpoint then replays exactly the order and augmentations the
uninterrupted run would have used, with any number of workers.
"""

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochShuffle(Sampler):
    """Yields (index, augmentation seed) in a random order seeded by (seed, epoch)."""

    def __init__(self, n: int, seed: int = 0):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n, generator=generator).tolist()
        seeds = torch.randint(0, 2**31 - 1, (self.n,), generator=generator).tolist()
        return iter(zip(order, seeds))
