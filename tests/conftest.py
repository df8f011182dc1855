"""Shared fixtures: a small phantom data set and composed configs for tiny, fast runs."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from tumorseg.data.phantom import generate_phantom

REPO = Path(__file__).resolve().parents[1]

# Under pytest-xdist (make test: two workers per core, up to 8), each worker and the commands it starts get their share
# of the cores: two workers of two threads each on two cores spend their time waiting for each other's threads.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    THREADS = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    # TorchInductor builds its kernels on as many processes (one: in the worker itself, no compile pool)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TORCHINDUCTOR_COMPILE_THREADS"):
        os.environ[name] = str(THREADS)
    import torch

    torch.set_num_threads(THREADS)
CONF = REPO / "conf"

# Overrides that make a run take seconds: 64x64 slices, a 2-level net of 4-8-16 channels, 2 batches.
TINY = [
    "data=phantom",
    "data.image_size=64",
    "data.batch_size=4",
    "data.num_workers=0",
    "model.base_channels=4",
    "model.depth=2",
    "model.flat_steps=0",  # the tests' net doubles at every step, as they were written for
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.num_sanity_val_steps=0",
    "callbacks.progress_bar=null",
    # The suite's runs keep the training of before the recipe became the default: no augmentation (seconds),
    # Dice + BCE, cosine (a resume may extend the epochs; one-cycle's step count is fixed when it starts).
    "augment=none",
    "loss=dice_bce",
    "scheduler=cosine",
]
PHANTOM = dict(train_subjects=6, val_subjects=2, slices=8, size=64, seed=0)


@pytest.fixture(scope="session", autouse=True)
def runtime_cache(tmp_path_factory) -> Path:
    """runtime=auto's measured choices (tumorseg.inference.autotune) go to a folder of this test session, never the
    user's cache; one folder for all xdist workers of the session (under their common base folder; the cache is
    written by rename), so that a model file, the shipped one above all, is measured once per session, not once
    per worker."""
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "tumorseg-cache"
    folder.mkdir(exist_ok=True)
    os.environ["TUMORSEG_CACHE_DIR"] = str(folder)
    return folder


@pytest.fixture
def fake_rates(monkeypatch, tmp_path):
    """runtime=auto measures nothing: set(rates) says the slices/s each way would measure; calls counts the
    measurements. The test's own cache folder, so that no other test's fake choice is reused."""
    from types import SimpleNamespace

    from tumorseg.inference import autotune

    fake = SimpleNamespace(rates={}, calls=0)

    def measure(runners, shape, *args, **kwargs):
        fake.calls += 1
        return {name: fake.rates.get(name, 1.0) for name in runners}

    fake.set = lambda **rates: fake.rates.update({k.replace("_", " "): v for k, v in rates.items()})
    monkeypatch.setattr(autotune, "measure", measure)
    monkeypatch.setenv("TUMORSEG_CACHE_DIR", str(tmp_path / "cache"))
    return fake


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """paths.data_dir holding phantom/ (small: 6 train subjects, 2 val, 64x64)."""
    root = tmp_path_factory.mktemp("data")
    generate_phantom(root / "phantom", **PHANTOM)
    return root


def phantom_overrides(data_dir: Path) -> list[str]:
    return [f"paths.data_dir={data_dir}"] + [f"data.phantom.{k}={v}" for k, v in PHANTOM.items()]


def make_cfg(overrides: list[str], out_dir: Path | None = None) -> DictConfig:
    """Compose conf/train.yaml as `python -m tumorseg.train` would, with paths pinned."""
    paths = [f"paths.root_dir={REPO}"]
    if out_dir is not None:
        paths += [f"paths.output_dir={out_dir}", f"paths.log_dir={out_dir}"]
    with initialize_config_module(config_module="tumorseg.conf", version_base="1.3"):
        return compose("train", overrides=paths + overrides)


@pytest.fixture
def tiny_cfg(data_dir, tmp_path):
    """A factory: tiny run config writing into tmp_path/run."""

    def factory(*overrides: str, out: str = "run") -> DictConfig:
        return make_cfg(TINY + phantom_overrides(data_dir) + list(overrides), tmp_path / out)

    return factory


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `python -m <args>` in a subprocess, as a user would."""
    env = dict(os.environ, PYTHONPATH=str(REPO), HYDRA_FULL_ERROR="0")
    env.pop("TUMORSEG_DATA", None)
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd or REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def trained_run(data_dir, tmp_path_factory) -> Path:
    """A finished tiny training run (approach=split) on the phantom data: its run dir."""
    from tumorseg.train import train

    run = tmp_path_factory.mktemp("trained") / "run"
    learns = ["trainer.max_epochs=6", "trainer.limit_train_batches=8", "trainer.limit_val_batches=1.0",
              "model.base_channels=8", "optimizer.lr=3e-3"]
    train(make_cfg(TINY + phantom_overrides(data_dir) + learns, run))
    return run


def train_run(data_dir, tmp_path, *overrides: str, base=TINY):
    """A tiny training run: (run dir, metrics)."""
    from tumorseg.train import train

    run = tmp_path / "run"
    return run, train(make_cfg(base + phantom_overrides(data_dir) + list(overrides), run))


def make_net(overrides: str):
    """The net of a composed model config."""
    from omegaconf import OmegaConf

    from tumorseg.models import build_net

    return build_net(OmegaConf.to_container(make_cfg(overrides.split()).model, resolve=True))


# Fixtures that train (here and in the test files): a test using one, even through another fixture, trains.
TRAINING_FIXTURES = {"trained_run", "run_25d"}


def pytest_collection_modifyitems(items):
    """A test that trains through a fixture is marked `trains`, as one that calls train() is marked by hand."""
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.trains)


def assert_errors(result, *fragments) -> None:
    """A user error: exit 2, no traceback, every fragment on stderr, each line of stderr an `error: ...` line."""
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-2000:]
    for text in fragments:
        assert str(text) in result.stderr, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert lines and all(line.startswith("error: ") for line in lines), result.stderr[-2000:]


def assert_one_error(result, *fragments) -> None:
    """Exit 2, exactly one line on stderr (`error: ...`, holding every fragment), no traceback."""
    assert_errors(result, *fragments)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr[-2000:]


def run_main(module: str, *args: str) -> subprocess.CompletedProcess:
    """Run a Hydra app's main() in this process (faster than a subprocess), as `python -m module args`."""
    import contextlib
    import importlib
    import io

    main = importlib.import_module(module).main
    out, err, argv = io.StringIO(), io.StringIO(), sys.argv
    sys.argv = [module, *args]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = argv
    return subprocess.CompletedProcess([module, *args], code, out.getvalue(), err.getvalue())


def ship_main(ckpt, out, *options: str) -> Path:
    """tumorseg ship ckpt_path=CKPT output=OUT OPTIONS..., in this process; fails the test unless it wrote OUT."""
    result = run_main("tumorseg.ship", f"ckpt_path={ckpt}", f"output={out}", *options)
    assert result.returncode == 0, result.stderr[-2000:]
    return Path(out)


def report(runs: list, out=None) -> str:
    """tumorseg report runs=[...] [out=...], in this process: the table it printed."""
    result = run_main("tumorseg.report", f"runs=[{','.join(map(str, runs))}]", *([f"out={out}"] if out else []))
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.rsplit("written: ", 1)[0]
