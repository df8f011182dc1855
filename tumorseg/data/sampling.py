"""Samplers that are pure functions of (seed, epoch, rank): exact resumes, and DDP shards without repeats.

EpochShuffle hands each training item its own augmentation seed, so resuming a run from an epoch's
checkpoint replays exactly the order and augmentations of the uninterrupted run, with any number
of workers. Under DDP each rank takes every world_size-th item of the same permutation.
"""

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochShuffle(Sampler):
    """Yields (index, augmentation seed) in a random order seeded by (seed, epoch).

    With `weights`, an epoch is n draws with replacement in proportion to them (oversampling).
    """

    def __init__(self, n: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 weights: torch.Tensor | None = None):
        self.n, self.seed, self.epoch, self.rank, self.world_size = n, seed, 0, rank, world_size
        self.weights = weights

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n // self.world_size  # every rank takes the same number of steps

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        if self.weights is None:
            order = torch.randperm(self.n, generator=generator).tolist()
        else:
            order = torch.multinomial(self.weights, self.n, replacement=True, generator=generator).tolist()
        seeds = torch.randint(0, 2**31 - 1, (self.n,), generator=generator).tolist()
        pairs = list(zip(order, seeds))[: len(self) * self.world_size]
        return iter(pairs[self.rank :: self.world_size])


class Shard(Sampler):
    """Evaluation under DDP: rank r takes items r, r + world_size, ... (no padding, so no item counts twice)."""

    def __init__(self, n: int, rank: int = 0, world_size: int = 1):
        self.indices = list(range(rank, n, world_size))

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)
