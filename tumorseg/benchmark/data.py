"""The data pipeline: the phantom set's loaders as training gets them, and the images/s they deliver per
augmentation, without a model."""

import itertools
import time
from pathlib import Path

from hydra.utils import instantiate

from tumorseg.benchmark.configs import train_config
from tumorseg.benchmark.settings import BenchSettings
from tumorseg.data import SegDataModule

AUGMENTS = ("none", "flip", "rotate", "elastic", "all")


def datamodule(root: Path, settings: BenchSettings, augment: str = "none") -> SegDataModule:
    """The loaders of the set at root with the training config's augment= and workers, set up."""
    cfg = train_config(settings.device, f"augment={augment}")
    dm = SegDataModule(str(root), {"name": "full"}, instantiate(cfg.augment) or None,
                       image_size=settings.image_size, batch_size=settings.batch_size,
                       num_workers=cfg.data.num_workers, pin_memory=settings.device == "cuda")
    dm.setup()
    return dm


def data_rate(dm: SegDataModule, batches: int) -> float:
    """Images/s the train loader delivers (augmentation included), without a model, in steady state."""
    epoch = dm.train_dataloader()  # one loader, so that its persistent workers serve every epoch
    loader = (batch for _ in itertools.count() for batch in epoch)
    # Workers start one by one and then hold 2 batches each ready: skip the start, and time many
    # times the prefetched batches, or the figure measures start-up (many workers) or the buffer.
    in_flight = 2 * max(dm.num_workers, 1)
    for _ in range(in_flight + 1):
        next(loader)
    start, images = time.perf_counter(), 0
    for _ in range(max(batches, 5 * in_flight)):
        images += next(loader)[0].shape[0]
    return images / (time.perf_counter() - start)


def data_rates(root: Path, settings: BenchSettings) -> dict[str, float]:
    """Images/s of each augmentation."""
    rates = {a: data_rate(datamodule(root, settings, a), settings.data_batches) for a in AUGMENTS}
    print(f"  data: {rates}", flush=True)
    return rates
