"""Config faults caught before any training: wrong types and ranges, an output dir that cannot be written."""

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from tumorseg.errors import UserError, exit_with

# The one rule set of every command's options, by their key in the composed config (a command checks the keys its
# config has). key: (type, test, what the test asks, an example)
RULES = {
    "seed": (int, lambda v: v >= 0, ">= 0", 42),
    "threshold": (float, lambda v: 0 < v < 1, "between 0 and 1", 0.5),
    "seed_threshold": (float, lambda v: 0 <= v <= 1, "between 0 (off) and 1", 0.7),
    "batch_size": (int, lambda v: v > 0, "> 0", 16),
    "max_pixels": (int, lambda v: v > 0, "> 0", 100_000_000),
    "postprocess.min_size": (int, lambda v: v >= 0, ">= 0 (0: keep all)", 10),
    "postprocess.seed_threshold": (float, lambda v: 0 <= v <= 1, "between 0 (off) and 1", 0.7),
    "opset": (int, lambda v: v >= 7, ">= 7", 17),
    "check_batch": (int, lambda v: v > 0, "> 0", 3),
    "tolerance": (float, lambda v: v > 0, "> 0", 1e-4),
    "calibration_slices": (int, lambda v: v > 0, "> 0", 64),
    "min_agreement": (float, lambda v: 0 <= v <= 1, "between 0 and 1", 0.9),
    "data.image_size": (int, lambda v: v > 0, "> 0", 256),
    "data.batch_size": (int, lambda v: v > 0, "> 0", 16),
    "data.num_workers": (int, lambda v: v >= 0, ">= 0", 2),
    "data.context_slices": (int, lambda v: v >= 0, ">= 0 (0: 2D)", 1),
    "data.mean": (float, lambda v: True, "", 0.5),
    "data.std": (float, lambda v: v > 0, "> 0", 0.25),
    "data.tumor_share": (float, lambda v: 0 < v < 1, "between 0 and 1", 0.9),
    "data.train_crop": (int, lambda v: True, "(or null: whole slices)", 128),
    "approach.k": (int, lambda v: v >= 2, ">= 2", 5),
    "approach.fold": (int, lambda v: v >= 0, ">= 0", 0),
    "approach.test_size": (float, lambda v: 0 < v < 1, "between 0 and 1", 0.2),
    "approach.val_size": (float, lambda v: 0 < v < 1, "between 0 and 1", 0.1),
    "model.base_channels": (int, lambda v: v > 0, "> 0", 16),
    "model.depth": (int, lambda v: v >= 1, ">= 1", 4),
    "model.flat_steps": (int, lambda v: v >= 0, ">= 0", 1),
    "model.dropout": (float, lambda v: 0 <= v < 1, "in [0, 1)", 0.1),
    "optimizer.lr": (float, lambda v: v > 0, "> 0", 0.001),
    "optimizer.weight_decay": (float, lambda v: v >= 0, ">= 0", 1e-4),
    "trainer.max_epochs": (int, lambda v: v >= 1 or v == -1, ">= 1 (or -1: no limit)", 20),
}
# Lightning reads an int as a number of batches and a float as a share of them; 0 would skip the stage, but a run
# always validates (its checkpoint is the one of best val Dice) and reports its test split.
BATCHES = (float, lambda v: (isinstance(v, int) and v >= 1) or 0 < v <= 1,
           "> 0: a number of batches, or a share of them up to 1.0", 1.0)
RULES.update({f"trainer.limit_{stage}_batches": BATCHES for stage in ("train", "val", "test")})


def check_config(cfg: DictConfig) -> None:
    """Raise UserError for the first value of the wrong type or out of range."""
    for key, (kind, test, wanted, example) in RULES.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is None:
            continue
        ok_type = isinstance(value, kind) or (kind is float and isinstance(value, int))
        if isinstance(value, bool) or not ok_type or not test(value):
            raise UserError(f"{key}={value!r} must be {'an' if kind is int else 'a'} {kind.__name__}"
                            f"{' ' + wanted if wanted else ''}: e.g. {key}={example}")


def check_compiler(cfg: DictConfig) -> None:
    """module.compile on CPU needs a C++ compiler (torch.compile's CPU backend builds C++); say so before training."""
    on_gpu = str(cfg.trainer.get("accelerator")) in ("gpu", "cuda")
    if not OmegaConf.select(cfg, "module.compile", default=False) or on_gpu:
        return
    names = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "c++", "clang++"]
    if not any(shutil.which(n) for n in names):
        raise UserError(f"module.compile=true needs a C++ compiler on CPU and none of {', '.join(names)} is on PATH: "
                        f"install one (e.g. apt install g++) or set module.compile=false")


def check_writable(folder: str | Path) -> None:
    """Create the output folder now and write a probe file, so that a bad one fails before training."""
    path = Path(folder).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise UserError(f"output dir {path} cannot be written ({err.strerror}): "
                        f"set hydra.run.dir (or hydra.sweep.dir) to a folder you can write") from None


# What a resumed run must share with the run it continues: the net, its input, what it learns and how.
# (data.root, num_workers and pin_memory may differ: the same data moved, another machine.)
RESUME_KEYS = ("seed", "model", "data", "approach", "augment", "loss", "optimizer", "scheduler", "module")
RESUME_FREE = {"data.root", "data.num_workers", "data.pin_memory"}


def leaves(node, prefix: str = "") -> dict:
    """{dotted key: value} of a plain nested dict."""
    if not isinstance(node, dict):
        return {prefix: node}
    return {k: v for key, value in node.items() for k, v in leaves(value, f"{prefix}.{key}" if prefix else key).items()}


def plain(config: DictConfig, key: str, resolve: bool):
    """The value at key as plain data (resolved when asked and resolvable)."""
    node = OmegaConf.select(config, key, default=None)
    if not OmegaConf.is_config(node):
        return node
    try:
        return OmegaConf.to_container(node, resolve=resolve)
    except Exception:  # noqa: BLE001 - an interpolation not resolvable yet: compare as written
        return OmegaConf.to_container(node, resolve=False)


def recorded_config(run: Path) -> tuple[DictConfig, bool] | None:
    """(the config a run was started with, whether it is resolved): its .hydra/config.yaml, else its last.ckpt's."""
    if (run / ".hydra" / "config.yaml").is_file():
        return OmegaConf.load(run / ".hydra" / "config.yaml"), False
    from tumorseg import model_file  # torch: imported only when a run has no .hydra record

    try:
        return OmegaConf.create(model_file.read(run / "checkpoints" / "last.ckpt", "resume").run_config), True
    except UserError:  # no readable record: train's own checks of the checkpoint speak
        return None


def resume_verdict(config: DictConfig, run: Path) -> str | None:
    """Checked before Hydra writes into run: UserError when resume=run must not go on; a message when the run is
    finished (nothing to do); None when it may go on."""
    if not (run / "checkpoints" / "last.ckpt").is_file():
        raise UserError(f"resume={run} is not a run dir (no checkpoints/last.ckpt in it): resume=<run dir> of a run "
                        f"that finished an epoch, or ckpt_path=<file>.ckpt")
    if (run / "metrics.json").is_file():
        return (f"{run} is a finished run (it has metrics.json): nothing to resume, nothing changed. To train "
                f"further, start a new run with ckpt_path={run / 'checkpoints' / 'last.ckpt'}")
    record = recorded_config(run)
    if record is None:
        return None
    recorded, resolved = record
    for key in RESUME_KEYS:
        old, new = leaves({key: plain(recorded, key, False)}), leaves({key: plain(config, key, resolved)})
        for leaf in sorted(set(old) | set(new)):
            if leaf not in RESUME_FREE and old.get(leaf) != new.get(leaf):
                raise UserError(f"resume={run} was trained with {leaf}={old.get(leaf)}, this command says "
                                f"{leaf}={new.get(leaf)}: resume with the run's own settings (drop the override), or "
                                f"start a new run with ckpt_path= or init_from=")
    return None


LOCK = ".lock"  # in a run dir: the pid of the process that owns it


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def take_run_dir(folder: Path) -> Path | None:
    """Write folder/.lock with this process's pid; refuse a folder whose lock names a live other process.

    A lock left by a dead process (killed, crashed) is taken over. DDP's worker processes (LOCAL_RANK > 0) share
    their launcher's run dir and take no lock.
    """
    if os.environ.get("LOCAL_RANK", "0") != "0":
        return None
    lock = folder / LOCK
    try:
        owner = int(lock.read_text().split()[0]) if lock.is_file() else None
    except (ValueError, IndexError, OSError):
        owner = None
    if owner and owner != os.getpid() and pid_alive(owner):
        raise UserError(f"run dir {folder} is in use by process {owner} (its {LOCK}): wait for it to end, or choose "
                        f"another hydra.run.dir")
    lock.write_text(f"{os.getpid()}\n")
    return lock


def release_run_dir(lock: Path | None) -> None:
    """Remove the lock if this process still owns it."""
    try:
        if lock is not None and lock.read_text().split()[0] == str(os.getpid()):
            lock.unlink()
    except (OSError, IndexError):
        pass


class OutputDirCheck(Callback):
    """Hydra callback: check the run/sweep dir before Hydra creates it (which would end in a traceback), and hold
    the run dir's lock while the command runs."""

    lock: Path | None = None

    def _check(self, folder: str) -> None:
        try:
            check_writable(folder)
        except UserError as err:
            exit_with(err)

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        HydraConfig.instance().set_config(config)  # as Hydra does next; run.dir may need ${hydra:...}
        try:  # all before Hydra writes .hydra/ and the log into the run dir
            resume = config.get("resume")
            finished = resume_verdict(config, Path(resume).expanduser()) if resume else None
            if finished:
                print(finished, flush=True)
                sys.exit(0)
            check_writable(config.hydra.run.dir)
            self.lock = take_run_dir(Path(config.hydra.run.dir).expanduser())
        except UserError as err:
            exit_with(err)
        atexit.register(release_run_dir, self.lock)  # also after sys.exit (an error, a signal's status)

    def on_run_end(self, config: DictConfig, **kwargs) -> None:
        release_run_dir(self.lock)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        HydraConfig.instance().set_config(config)
        self._check(config.hydra.sweep.dir)
