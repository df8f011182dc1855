"""A mistake in the options (tumorseg/errors.py): one line `error: ...` naming the option, exit 2, no traceback."""

import pytest

from tests.conftest import assert_one_error, run_main
from tests.test_problems import phantom, train
from tumorseg.cli import COMMANDS


@pytest.mark.parametrize("option, message", [
    ("data.train_crop=50", "data.train_crop=50 must be a multiple of 32"),
    ("data.train_crop=abc", "data.train_crop='abc' must be an int"),
    ("data.tumor_share=0", "data.tumor_share=0 must be a float between 0 and 1"),
    ("approach.name=bogus", "approach.name='bogus' is not one of"),
])
def test_a_value_a_constructor_refuses_is_one_line(option, message, tmp_path):
    root = phantom(tmp_path / "d")
    assert_one_error(train(root, tmp_path, option), message)


@pytest.mark.parametrize("option, named", [
    ("foo.bar=1", "'foo.bar'"),
    ("approach.k=abc", "'approach.k'"),  # approach=split has no k
    ("approach=nonexistent", "approach/nonexistent"),
    ("data.mean=[", "'['"),
])
def test_an_override_hydra_cannot_parse_or_compose_is_one_line(option, named, tmp_path):
    result = train(tmp_path / "d", tmp_path, option)
    assert_one_error(result, named)


@pytest.mark.parametrize("command", sorted(set(COMMANDS.values())))
def test_every_command_reports_an_unknown_key_in_one_line(command, tmp_path):
    result = run_main(command, "foo.bar=1", f"hydra.run.dir={tmp_path / 'run'}")
    assert_one_error(result, "'foo.bar'")


@pytest.mark.parametrize("override", ["data=[1,2,3,4]", "loss=[dice,2]"])
def test_a_group_given_a_list_with_a_number_is_one_line(override, tmp_path):
    """Hydra's defaults list raises a TypeError on such a list; it is the user's override, said in one line."""
    assert_one_error(run_main("tumorseg.train", override, f"hydra.run.dir={tmp_path}"),
                     f"{override}: a config group", "takes option names, not numbers")
