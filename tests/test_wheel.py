"""The wheel is the product: built from the checkout, installed in a new venv, run from an empty folder."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from tests.conftest import REPO


def run(cmd: list[str], cwd: Path, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, encoding="utf-8", errors="replace",
                            timeout=timeout)
    assert result.returncode == 0, (cmd, result.stdout[-2000:], result.stderr[-3000:])
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict]:
    """(bin dir, environment) of a new venv holding the wheel alone, its dependencies seen from this venv."""
    root = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    # built from a copy, as from a fresh clone: setuptools writes build/ beside the sources
    source = root / "source"
    local = {".git", ".venv", "outputs", "data", "build", "dist", ".pytest_cache",
             "node_modules"}  # the checkout's own, at its top

    def ignore(folder: str, names: list[str]) -> set[str]:
        top = Path(folder) == REPO
        return {n for n in names if (top and n in local) or n == "__pycache__" or n.endswith(".egg-info")}

    shutil.copytree(REPO, source, ignore=ignore)
    run([sys.executable, "-m", "pip", "wheel", str(source), "-w", str(root / "dist"), "--no-deps",
         "--no-build-isolation", "--quiet"], root, env)
    (wheel,) = (root / "dist").glob("tumorseg-*.whl")
    venv.create(root / "venv", with_pip=False)
    bin_dir = root / "venv" / "bin"
    # torch and the other dependencies come from this venv's site-packages as a plain path (a .pth line adds a
    # folder to sys.path without running that folder's own .pth files, so the checkout's editable hook stays out)
    purelib = Path(sysconfig.get_paths(vars={"base": str(root / "venv"), "platbase": str(root / "venv")})["purelib"])
    (purelib / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([sys.executable, "-m", "pip", "--python", str(bin_dir / "python"), "install", "--no-deps", "--quiet",
         str(wheel)], root, env)
    env = {**env, "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", "HYDRA_FULL_ERROR": "0"}
    return bin_dir, env


@pytest.mark.slow
def test_the_wheel_trains_evaluates_predicts_and_exports_from_an_empty_folder(installed, tmp_path):
    bin_dir, env = installed
    work = tmp_path / "empty"
    work.mkdir()
    where = run([str(bin_dir / "python"), "-c", "import tumorseg, tumorseg.conf; print(tumorseg.__file__); "
                 "print(tumorseg.conf.__file__)"], work, env).stdout.split()
    assert all(str(REPO) not in line and str(bin_dir.parent) in line for line in where), where
    assert "train" in run(["tumorseg", "--help"], work, env).stdout

    run(["tumorseg", "train", "data=phantom", "debug=fast", "hydra.run.dir=run"], work, env)
    ckpt = next((work / "run/checkpoints").glob("epoch_*.ckpt"))
    metrics = json.loads((work / "run/metrics.json").read_text())
    assert "test/dice" in metrics
    val = work / "data/phantom/val"  # the phantom that data=phantom generated in the working folder
    evaluated = run(["tumorseg", "evaluate", f"ckpt_path={ckpt}", f"data_dir={val}", "hydra.run.dir=eval"], work, env)
    assert json.loads(evaluated.stdout.strip().splitlines()[-1])["n_images"] > 0
    subject = next((val / "images").iterdir())
    # predict with the shipped model (without its 10-view TTA: the same files and path, a tenth of the passes)
    run(["tumorseg", "predict", f"input={subject}", "output=pred", "tta=false", "hydra.run.dir=pred-log"], work, env)
    assert len(list((work / "pred/masks").rglob("*.png"))) == len(list(subject.glob("*.png")))
    run(["tumorseg", "export", f"ckpt_path={ckpt}", "output=model.onnx", "hydra.run.dir=export"], work, env)
    assert (work / "model.onnx").stat().st_size > 0
    # the browser page from the wheel alone (its npm files are package data: no node, no node_modules here)
    run(["tumorseg", "export", "format=web", "output=web", "hydra.run.dir=export-web"], work, env)
    page = {str(p.relative_to(work / "web")) for p in (work / "web").rglob("*") if p.is_file()}
    assert {"index.html", "worker.js", "model.onnx", "model.json", "vendor/niivue/index.js",
            "vendor/onnxruntime-web/ort-wasm-simd-threaded.wasm", "vendor/dcm2niix/dcm2niix.jpeg.wasm"} <= page, page


@pytest.mark.slow
def test_a_users_own_experiment_file_outside_the_checkout(installed, tmp_path):
    bin_dir, env = installed
    mine = tmp_path / "my-configs"
    (mine / "experiment").mkdir(parents=True)
    (mine / "experiment/tiny.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /data: phantom\n"
        "model:\n  base_channels: 4\n  depth: 2\ndata:\n  image_size: 64\n  num_workers: 0\n"
        "trainer:\n  max_epochs: 1\n  limit_train_batches: 2\n  limit_val_batches: 2\n  limit_test_batches: 2\n")
    work = tmp_path / "work"
    work.mkdir()
    run(["tumorseg", "train", f"hydra.searchpath=[file://{mine}]", "experiment=tiny", "hydra.run.dir=run"], work, env)
    config = (work / "run/.hydra/config.yaml").read_text()
    assert "base_channels: 4" in config and "image_size: 64" in config
