"""`tumorseg <command>`: one entry point for every command, the same as python -m tumorseg.<command>."""

import importlib
import pkgutil

import tumorseg
from tests.conftest import run_main
from tumorseg.cli import COMMANDS, main


def test_help_lists_every_command_with_one_line(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        (line,) = [line for line in out.splitlines() if line.strip().startswith(name + " ")]
        assert len(line.split(None, 1)[1]) > 10, line


def test_every_module_with_a_command_line_is_a_command():
    mains = {info.name for info in pkgutil.iter_modules(tumorseg.__path__)
             if info.name != "cli" and hasattr(importlib.import_module(f"tumorseg.{info.name}"), "main")}
    assert mains == set(COMMANDS)


def test_an_unknown_command_is_one_line(capsys):
    assert main(["trian"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "'trian' is not a tumorseg command" in err and "train" in err


def test_a_command_takes_its_options_as_with_python_m(data_dir, tmp_path):
    through_cli = run_main("tumorseg.cli", "check", f"data.root={data_dir / 'phantom'}", "data.image_size=64",
                           f"hydra.run.dir={tmp_path / 'a'}")
    direct = run_main("tumorseg.check", f"data.root={data_dir / 'phantom'}", "data.image_size=64",
                      f"hydra.run.dir={tmp_path / 'b'}")
    assert through_cli.returncode == direct.returncode == 0, through_cli.stderr[-1000:]
    assert through_cli.stdout.splitlines()[-1] == direct.stdout.splitlines()[-1]
