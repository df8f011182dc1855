"""The code stays lint-clean: ruff with the project's config (pyproject.toml [tool.ruff]) finds nothing."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

FOLDERS = ["tumorseg", "tests", "experiments"]


def ruff_command() -> list[str] | None:
    """How to run the ruff of this environment: the one next to the interpreter, else its module; None if absent."""
    beside = Path(sys.executable).parent / ("ruff.exe" if os.name == "nt" else "ruff")
    if beside.is_file():
        return [str(beside)]
    if importlib.util.find_spec("ruff") is not None:
        return [sys.executable, "-m", "ruff"]
    return None


def test_ruff_finds_nothing():
    command = ruff_command()
    if command is None:
        if os.environ.get("CI"):
            pytest.fail("ruff is not installed, and under CI the lint check must run: pip install ruff")
        pytest.skip("ruff is not installed (pip install ruff); under CI this check must run")
    # --no-cache: no .ruff_cache left in the checkout; cwd=REPO: ruff reads the project's pyproject.toml
    result = subprocess.run([*command, "check", "--no-cache", "--output-format", "concise", *FOLDERS], cwd=REPO,
                            capture_output=True, encoding="utf-8", errors="replace", timeout=300)
    assert result.returncode == 0, f"ruff check {' '.join(FOLDERS)} failed:\n{result.stdout}{result.stderr}"
