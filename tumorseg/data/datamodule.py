"""LightningDataModule: find the pairs, apply the approach's split rules, serve the loaders."""

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import albumentations as A
import lightning as L
import torch
from torch.utils.data import DataLoader

from tumorseg.data.crops import CropSettings, cropped
from tumorseg.data.dataset import SegDataset
from tumorseg.data.layout import Sample, check_root, check_window, find_pairs
from tumorseg.data.phantom import generate_phantom
from tumorseg.data.preprocessing import hu_window
from tumorseg.data.problems import Problems
from tumorseg.data.sampling import EpochShuffle, Shard
from tumorseg.data.splits import fold_indices, split_indices
from tumorseg.errors import UserError

APPROACHES = ("split", "full", "cv")


def _take(samples: list[Sample], indices: list[int]) -> list[Sample]:
    return [samples[i] for i in indices]


def _describe(samples: list[Sample]) -> str:
    return f"{len({s.subject for s in samples})} subjects / {len(samples)} slices"


def check_part(part: str, dataset: SegDataset, problems: Problems) -> None:
    """Part-level warnings: an evaluation part without any tumor."""
    if part != "train" and len(dataset) and not dataset.masks.any():
        problems.warn(f"{part} ({len(dataset)} slices) has no tumor at all: Dice on it means little")


class SegDataModule(L.LightningDataModule):
    """Train/val/test parts of a data set root, split by the rules of `approach`."""

    def __init__(
        self,
        root: str,
        approach: Mapping,
        augment: Callable | None = None,
        image_size: int = 256,
        batch_size: int = 16,
        num_workers: int = 0,
        mean: float = 0.5,
        std: float = 0.25,
        pin_memory: bool = False,
        mask_threshold: int = 127,
        strict: bool = False,
        seed: int = 42,
        tumor_share: float | None = None,
        context_slices: int = 0,
        train_crop: int | None = None,
        phantom: Mapping | None = None,
        crops: Mapping | None = None,
        proposer: Callable | None = None,
        window: Sequence[float] | None = None,
    ):
        """crops: data.crops (tumorseg.data.crops.CropSettings; size null: whole slices); proposer(path, slices): stage
        1's probabilities of a part's slices, for crops.proposals_from (tumorseg train gives it); window: how the
        slices were made from CT volumes (Preprocessing.window), checked against convert's records of the root."""
        super().__init__()
        self.root = Path(root).expanduser()
        self.approach = dict(approach)
        self.augment = augment or None  # augment=none composes to an empty node
        self.image_size, self.batch_size, self.num_workers = image_size, batch_size, num_workers
        self.mean, self.std, self.pin_memory = mean, std, pin_memory
        self.mask_threshold, self.strict, self.seed = mask_threshold, strict, seed
        if tumor_share is not None and not 0 < tumor_share < 1:
            raise UserError(f"data.tumor_share={tumor_share} must be between 0 and 1 (or null: no oversampling)")
        self.tumor_share = tumor_share
        self.context_slices = context_slices
        if train_crop is not None and not (32 <= train_crop <= image_size and train_crop % 32 == 0):
            raise UserError(f"data.train_crop={train_crop} must be a multiple of 32 between 32 and data.image_size "
                            f"({image_size}), or null: train on whole slices")
        self.train_crop = train_crop
        self.crops, self.proposer = CropSettings.of(crops), proposer
        if self.crops is not None and (train_crop is not None or self.crops.size > image_size):
            raise UserError(f"data.crops.size={self.crops.size} needs data.train_crop=null and a size up to "
                            f"data.image_size={image_size}: crops of a two-stage pipeline are windows of the slice")
        self.window = hu_window(window)
        self.problems = Problems()
        self.phantom = dict(phantom) if phantom is not None else None
        self.parts: dict[str, list[Sample]] = {}
        self.datasets: dict[str, SegDataset] = {}
        if self.approach.get("name") not in APPROACHES:
            raise UserError(f"approach.name={self.approach.get('name')!r} is not one of {list(APPROACHES)}: pick "
                            f"approach={' or approach='.join(APPROACHES)}")

    def prepare_data(self) -> None:
        """Generate the phantom data set when this data config embeds one."""
        if self.phantom is not None:
            generate_phantom(self.root, **self.phantom)

    def find(self) -> dict[str, list[Sample]]:
        """The pairs of train/ and, when present, val/; the layout checked, orphans recorded in self.problems."""
        check_root(self.root)
        check_window(self.root, self.window)
        if not (self.root / "train").is_dir():
            raise UserError(f"{self.root / 'train'} is missing: a data set root holds train/ (and val/, test/)")
        return {part: find_pairs(self.root / part, self.problems) for part in ("train", "val")
                if part == "train" or (self.root / part).is_dir()}

    def split(self, found: dict[str, list[Sample]]) -> dict[str, list[Sample]]:
        """Samples per part (train/val/test) according to the approach."""
        train, val = found["train"], found.get("val")
        a = self.approach
        if a["name"] == "full":
            if val is None:
                raise UserError(
                    f"approach=full validates on {self.root / 'val'}, which is missing: add val/ or use approach=split"
                )
            return {"train": train, "val": val}
        subjects = [s.subject for s in train]
        if a["name"] == "cv":
            keep, test = fold_indices(subjects, a["k"], a["fold"], a["random_state"])
        else:
            keep, test = split_indices(subjects, a["test_size"], a["random_state"], a["group_by"])
        parts = {"test": _take(train, test)}
        train = _take(train, keep)
        if val is None:
            val_share = a["val_size"] / (1 - a.get("test_size", 1 / a.get("k", 5)))
            keep, held = split_indices([s.subject for s in train], val_share, a["random_state"], a["group_by"])
            train, val = _take(train, keep), _take(train, held)
        parts.update(train=train, val=val)
        return parts

    def setup(self, stage: str | None = None) -> None:
        """Find, split, decode and check everything before any training; all faults at once."""
        if self.datasets:
            return
        found = self.find()
        try:
            self.parts = self.split(found)
        except UserError:
            # A faulty file (an orphan, a pair of two sizes) can leave too few subjects to split: name the files.
            self.decode(found)
            self.problems.raise_errors(self.root)
            raise
        self.datasets = self.decode(self.parts)
        if self.crops is not None:  # stage 2 of a two-stage pipeline trains on crops (tumorseg.data.crops)
            self.datasets = cropped(self.datasets, self.crops, self.seed, self.augment, self.proposer)
        self.problems.raise_errors(self.root)
        for part, dataset in self.datasets.items():
            check_part(part, dataset, self.problems)
        self.problems.log_warnings()

    def decode(self, parts: dict[str, list[Sample]]) -> dict[str, SegDataset]:
        """Every part decoded into a dataset; a faulty pair is recorded in self.problems and left out."""
        return {part: SegDataset(samples, self.image_size,
                                 self.train_transform() if part == "train" and self.crops is None else None,
                                 self.mean, self.std, self.problems, self.mask_threshold, self.strict,
                                 context_slices=self.context_slices)
                for part, samples in parts.items()}

    def train_transform(self) -> Callable | None:
        """The training augmentation, then (with train_crop) a square crop around a tumor pixel if the slice has one."""
        if self.train_crop is None:
            return self.augment
        # Convolutions are translation-equivariant: whole slices at evaluation, crops cost (crop/size)^2 to train.
        crop = A.CropNonEmptyMaskIfExists(self.train_crop, self.train_crop)
        steps = [] if self.augment is None else getattr(self.augment, "transforms", [self.augment])  # Compose: its steps
        return A.Compose([*steps, crop])

    def summary(self) -> str:
        """One line per part: subjects and slices (and crops by kind)."""
        crops = {p: f" -> crops: {d.counts()}" for p, d in self.datasets.items() if hasattr(d, "counts")}
        return "; ".join(f"{part}: {_describe(samples)}{crops.get(part, '')}" for part, samples in self.parts.items())

    def _loader(self, part: str, shuffle: bool = False) -> DataLoader:
        if part not in self.datasets:
            raise UserError(f"approach={self.approach['name']} has no {part} part")
        dataset = self.datasets[part]
        # Sharding is ours, not Lightning's (use_distributed_sampler=false): exact resumes, no repeated items.
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        weights = self._tumor_weights(dataset) if shuffle else None
        sampler = EpochShuffle(len(dataset), self.seed, rank, world, weights) if shuffle else Shard(len(dataset), rank, world)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            # A last batch of one slice would break BatchNorm statistics.
            drop_last=shuffle and len(sampler) % self.batch_size == 1,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
        )

    def _tumor_weights(self, dataset: SegDataset) -> torch.Tensor | None:
        """Sampling weights giving slices with tumor `tumor_share` of the draws (None: plain shuffle)."""
        has_tumor = torch.from_numpy(dataset.masks.reshape(len(dataset), -1).any(axis=1))
        n_tumor = int(has_tumor.sum())
        if self.tumor_share is None or n_tumor in (0, len(dataset)):
            return None
        share = self.tumor_share
        return torch.where(has_tumor, share / n_tumor, (1 - share) / (len(dataset) - n_tumor)).double()

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
