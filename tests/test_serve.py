"""tumorseg serve's command line: the page folder as its one argument, whatever its name, and Hydra's own overrides
beside it (the page served and its headers: tests/test_web.py)."""

import pytest

from tests.conftest import assert_one_error, run_main
from tumorseg.web.server import PageServer

# Folder names Hydra's override grammar would misread unquoted: spaces, brackets, commas, a quote, an interpolation,
# a trailing backslash.
ODD_NAMES = ["my page [1],x", "it's", "${x}", "end\\", "a\\'b"]


def page(folder):
    """A folder that serve takes as a page (the files it looks for)."""
    folder.mkdir()
    for name in ("index.html", "model.json", "model.onnx"):
        (folder / name).write_text("{}")
    return folder


@pytest.fixture
def served(monkeypatch):
    """serve returns as soon as it serves; the folders it served, as the server saw them."""
    folders = []

    def once(self, poll_interval=0.5):
        folders.append(self.RequestHandlerClass.keywords["directory"])

    monkeypatch.setattr(PageServer, "serve_forever", once)
    return folders


@pytest.mark.parametrize("name", ODD_NAMES)
def test_a_folder_named_with_hydras_grammar_is_served_as_named(name, tmp_path, served):
    folder = page(tmp_path / name)
    result = run_main("tumorseg.serve", str(folder), "port=0", "quiet=true")
    assert result.returncode == 0, result.stderr
    assert served == [str(folder.resolve())]
    assert f"serving {folder} at http://127.0.0.1:" in result.stdout


@pytest.mark.parametrize("name", ODD_NAMES)
def test_a_missing_folder_with_an_odd_name_is_named_in_one_line(name, tmp_path, served):
    assert_one_error(run_main("tumorseg.serve", str(tmp_path / name)), f"dir={tmp_path / name} is not a folder")
    assert served == []


def test_two_folders_are_refused_and_a_delete_override_is_no_folder(tmp_path, served):
    assert_one_error(run_main("tumorseg.serve", str(page(tmp_path / "a")), str(page(tmp_path / "b"))),
                     "one page folder at a time, not 2")
    assert_one_error(run_main("tumorseg.serve", str(tmp_path / "a"), "~quiet"), "quiet")  # Hydra's ~key: removed
    assert served == []


@pytest.mark.parametrize("port, words", [("null", "port is not set: port=8000"),
                                         ("~port", "give it a value (port=...)"),
                                         ("abc", "port='abc' must be an int")])
def test_a_port_that_is_not_set_or_no_number_is_one_line(port, words, tmp_path, served):
    folder = page(tmp_path / "page")
    assert_one_error(run_main("tumorseg.serve", str(folder), port if port.startswith("~") else f"port={port}"), words)
    assert served == []
