"""Pictures on disk: plots/loss.png, plots/dice.png (from TensorBoard scalars), plots/predictions.png."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from lightning.pytorch.loggers import TensorBoardLogger  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from tumorseg.data.dataset import SegDataset  # noqa: E402
from tumorseg.files.output_files import replacing  # noqa: E402
from tumorseg.training.callbacks import pick_slices, prediction_grid  # noqa: E402
from tumorseg.writers.pictures import save_rgb  # noqa: E402


def read_scalars(tb_dir: Path) -> dict[str, list[float]]:
    """Every scalar tag of every event file in tb_dir, values in step order."""
    series: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(tb_dir.glob("events.out.tfevents.*")):
        events = EventAccumulator(str(path), size_guidance={"scalars": 0})
        events.Reload()
        for tag in events.Tags()["scalars"]:
            series.setdefault(tag, []).extend((e.step, e.value) for e in events.Scalars(tag))
    return {tag: [v for _, v in sorted(points, key=lambda p: p[0])] for tag, points in series.items()}


def plot_curves(tb_dir: Path, plots_dir: Path) -> list[Path]:
    """Write loss.png (train/val loss and BCE) and dice.png (train/val Dice) per epoch."""
    scalars = read_scalars(tb_dir)
    plots_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, metrics in (("loss", ("loss", "bce")), ("dice", ("dice",))):
        fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6), squeeze=False)
        for ax, metric in zip(axes[0], metrics):
            for stage, style in (("train", "-o"), ("val", "-s")):
                values = scalars.get(f"{stage}/{metric}", [])
                ax.plot(range(1, len(values) + 1), values, style, markersize=3, label=f"{stage}/{metric}")
            ax.set_xlabel("epoch")
            ax.set_title(metric)
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        with replacing(plots_dir / f"{name}.png", "hydra.run.dir") as temp:
            fig.savefig(temp, dpi=100, format="png")
        plt.close(fig)
        written.append(plots_dir / f"{name}.png")
    return written


def save_curves(loggers: list, run_dir: Path) -> None:
    """plots/loss.png and plots/dice.png of a run, from the TensorBoard logger's events."""
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.flush()
            plot_curves(Path(logger.log_dir), run_dir / "plots")


def save_prediction_grid(module, dataset: SegDataset, run_dir: Path, threshold: float, n_slices: int = 8) -> Path:
    """plots/predictions.png: val slices as image | truth | prediction, from the module's current weights."""
    path = run_dir / "plots" / "predictions.png"
    save_rgb(path, prediction_grid(module, dataset, pick_slices(dataset, n_slices), threshold))
    return path
