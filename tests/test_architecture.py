"""The tree is the architecture: commands on top, one subpackage per stage, imports one way, docs/architecture.md
drawing every module."""

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "tumorseg"
COMMANDS = {"train", "evaluate", "predict", "export", "convert", "check", "ship", "report",
            "fetch", "bench", "serve", "compare"}
SHARED = {"cli", "errors", "__init__"}
# The stages, lowest first: a module imports only from its own stage or a lower one (and errors, tumorseg's root).
STAGES = ["files", "data", "volumes", "models", "inference", "scoring", "writers", "web", "training", "settings",
          "benchmark"]
MAX_LINES = 275


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "conf" not in p.relative_to(PACKAGE).parts)


def imported(path: Path) -> set[str]:
    """Every tumorseg module a file imports, at its top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tumorseg"):
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("tumorseg"))
    return names


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else None


def test_the_top_level_holds_only_the_commands():
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top == COMMANDS | SHARED, sorted(top - COMMANDS - SHARED)
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders <= set(STAGES) | {"reference"}, sorted(folders - set(STAGES))


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_says_what_it_owns(stage):
    init = PACKAGE / stage / "__init__.py"
    assert init.is_file() and ast.get_docstring(ast.parse(init.read_text())), f"{init} needs a docstring"


def test_imports_run_one_way():
    wrong = []
    for path in modules():
        name = ".".join(path.relative_to(REPO).with_suffix("").parts)
        own = stage_of(name)
        for target in imported(path):
            to = stage_of(target)
            if own is None:  # a command or a shared module
                if path.stem in COMMANDS and target.split(".")[1:2] and target.split(".")[1] in COMMANDS:
                    wrong.append(f"{name} -> {target} (a command imports another command)")
                continue
            if target.split(".")[1:2] and target.split(".")[1] in COMMANDS:
                wrong.append(f"{name} -> {target} (a stage imports a command)")
            elif to is not None and STAGES.index(to) > STAGES.index(own):
                wrong.append(f"{name} -> {target} ({own} is below {to})")
    assert not wrong, "\n".join(wrong)


def test_no_module_is_long():
    long = {str(p.relative_to(REPO)): n for p in modules() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_docs_architecture_draws_every_module():
    text = (REPO / "docs/architecture.md").read_text()
    listed = set(re.findall(r"tumorseg/[\w/]+\.py", text))
    missing = [str(p.relative_to(REPO)) for p in modules() if str(p.relative_to(REPO)) not in listed]
    assert not missing, f"docs/architecture.md leaves out {missing}"
