"""A run dir before Hydra writes into it: writable, one owner (a lock with its pid), and what resume= may
continue (the run's own settings, a finished run left as it is)."""

import atexit
import os
import sys
import tempfile
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from tumorseg.errors import UserError, exit_with


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
RESUME_KEYS = ("seed", "model", "data", "approach", "augment", "augment_ranges", "loss", "optimizer", "scheduler",
               "module")
RESUME_FREE = {"data.root", "data.num_workers", "data.pin_memory"}
# Where the classes that older run records name (_target_) live now: a run recorded before the stage subpackages
# resumes as any other.
MOVED_TARGETS = {"tumorseg.module.": "tumorseg.training.module.", "tumorseg.losses.": "tumorseg.training.losses.",
                 "tumorseg.augment_device.": "tumorseg.training.device_augment.",
                 "tumorseg.callbacks.": "tumorseg.training.callbacks.", "tumorseg.guards.": "tumorseg.training.guards.",
                 "tumorseg.config_checks.": "tumorseg.settings.run_dir."}


def today(value):
    """A recorded value as today's code names it (a moved class's _target_); other values as they are."""
    if isinstance(value, str):
        for old, new in MOVED_TARGETS.items():
            if value.startswith(old):
                return new + value[len(old):]
    return value


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
    from tumorseg.inference import model_file  # torch: imported only when a run has no .hydra record

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
    recorded, _ = record
    for key in RESUME_KEYS:
        # both resolved where they can be: a range written as a number then and as ${augment_ranges...} now is equal
        old = {k: today(v) for k, v in leaves({key: plain(recorded, key, True)}).items()}
        new = leaves({key: plain(config, key, True)})
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
