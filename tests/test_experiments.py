"""Experiment scripts do not rot (experiments/README.md, "Scripts: live or frozen"): every .py under experiments/ that
the lint covers imports only today's tumorseg API, and every one left out of the lint (pyproject.toml [tool.ruff]
extend-exclude) is frozen: it says the commit it ran at. No script is run; each is parsed and its imports resolved."""

import ast
import fnmatch
import importlib
import re
from pathlib import Path, PurePosixPath

import pytest

from tests.conftest import REPO

FROZEN = re.compile(r"Frozen: ran at commit [0-9a-f]{7,40} \(")


def excluded_patterns() -> list[str]:
    """ruff's extend-exclude patterns of the project's pyproject.toml."""
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the one list, read from the text
        listed = re.search(r"^extend-exclude\s*=\s*\[(.*?)\]", text, re.S | re.M)
        return re.findall(r'"([^"]+)"', re.sub(r"#.*", "", listed.group(1))) if listed else []
    return tomllib.loads(text).get("tool", {}).get("ruff", {}).get("extend-exclude", [])


def linted(relative: PurePosixPath, patterns: list[str]) -> bool:
    """Whether ruff checks this file: a pattern with a slash names a path from the repo root (or a folder above the
    file), one without names a file or folder anywhere."""
    for pattern in patterns:
        pattern = pattern.removeprefix("./").rstrip("/")
        if "/" in pattern:
            if any(fnmatch.fnmatchcase(str(p), pattern) for p in (relative, *relative.parents)):
                return False
        elif any(fnmatch.fnmatchcase(part, pattern) for part in relative.parts):
            return False
    return True


SCRIPTS = sorted(PurePosixPath(p.relative_to(REPO).as_posix()) for p in (REPO / "experiments").rglob("*.py"))
PATTERNS = excluded_patterns()
LIVE = [s for s in SCRIPTS if linted(s, PATTERNS)]
FROZEN_SCRIPTS = [s for s in SCRIPTS if not linted(s, PATTERNS)]


def tumorseg_imports(tree: ast.Module) -> list[tuple[int, str, str | None]]:
    """(line, module, name) of every absolute tumorseg import, at any depth (name None for `import tumorseg.x`)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "tumorseg":
                found += [(node.lineno, node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, None) for alias in node.names if alias.name.split(".")[0] == "tumorseg"]
    return found


def missing(module: str, name: str | None) -> str | None:
    """Why `from module import name` (or `import module`) fails today; None when it resolves."""
    try:
        imported = importlib.import_module(module)
    except ImportError as err:
        return f"{module}: {err}"
    if name is None or name == "*" or hasattr(imported, name):
        return None
    try:  # a submodule not imported by its package
        importlib.import_module(f"{module}.{name}")
    except ImportError:
        return f"{module} has no {name}"
    return None


def test_scripts_found():
    assert LIVE, "no linted .py under experiments/: the collection or the exclusion patterns are wrong"


@pytest.mark.parametrize("script", LIVE, ids=str)
def test_live_script_imports_resolve(script):
    tree = ast.parse((REPO / script).read_text(encoding="utf-8"), filename=str(script))
    if FROZEN.search(ast.get_docstring(tree) or ""):
        pytest.fail(f"{script} says it is frozen but the lint covers it: add its path to extend-exclude under "
                    f"[tool.ruff] in pyproject.toml")
    faults = [f"line {line}: {why}" for line, module, name in tumorseg_imports(tree)
              if (why := missing(module, name)) is not None]
    assert not faults, (f"{script} imports what tumorseg no longer has: " + "; ".join(faults) + ". Update it to "
                        "today's API, or freeze it (experiments/README.md: 'Frozen: ran at commit <hash> (<date>)' "
                        "in its docstring and its path in [tool.ruff] extend-exclude)")


@pytest.mark.parametrize("script", FROZEN_SCRIPTS, ids=str)
def test_unlinted_script_says_the_commit_it_ran_at(script):
    docstring = ast.get_docstring(ast.parse((REPO / script).read_text(encoding="utf-8"))) or ""
    assert FROZEN.search(docstring), (f"{script} is left out of the lint but its docstring does not say "
                                      f"'Frozen: ran at commit <hash> (<date>)'")


def test_exclusion_patterns_name_existing_paths():
    stale = [p for p in PATTERNS if "/" in p and not any(Path(REPO).glob(p.removeprefix("./").rstrip("/")))]
    assert not stale, f"[tool.ruff] extend-exclude names paths that no longer exist: {stale}"
