"""tumorseg.settings.run_dir and train's resume checks: what resume= and ckpt_path= may continue."""

import pytest
from omegaconf import OmegaConf

from tests.conftest import make_cfg
from tumorseg.errors import UserError
from tumorseg.settings.run_dir import resume_verdict
from tumorseg.train import check_schedule_length


def recorded_run(tmp_path, config, **older) -> object:
    """A run dir with a last.ckpt and a .hydra/config.yaml of config, with the dotted keys of older set as written."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"not read: the .hydra record speaks")
    (run / ".hydra").mkdir()
    record = OmegaConf.create(OmegaConf.to_container(config, resolve=False))
    for key, value in older.items():
        OmegaConf.update(record, key, value, force_add=True)
    OmegaConf.save(record, run / ".hydra" / "config.yaml")
    return run


def test_a_run_recorded_before_the_stage_packages_resumes(tmp_path):
    config = make_cfg(["data=phantom"], tmp_path / "out")
    run = recorded_run(tmp_path, config, **{"module._target_": "tumorseg.module.SegModule",
                                            "loss._target_": "tumorseg.losses.TverskyLoss"})
    assert resume_verdict(config, run) is None


def test_a_range_written_as_a_number_then_and_as_an_interpolation_now_is_the_same(tmp_path):
    config = make_cfg(["data=phantom", "augment=all"], tmp_path / "out")
    literal = OmegaConf.to_container(config.augment, resolve=True)  # as a record written before augment_ranges
    assert "${augment_ranges" in OmegaConf.to_yaml(OmegaConf.to_container(config.augment, resolve=False))
    assert resume_verdict(config, recorded_run(tmp_path, config, augment=literal)) is None


def test_a_resume_that_changes_the_loss_is_still_refused(tmp_path):
    config = make_cfg(["data=phantom"], tmp_path / "out")
    run = recorded_run(tmp_path, config, **{"loss._target_": "tumorseg.losses.DiceLoss"})
    with pytest.raises(UserError, match="loss._target_=tumorseg.training.losses.DiceLoss"):
        resume_verdict(config, run)


def test_a_one_cycle_schedule_is_not_stretched(tmp_path):
    config = make_cfg(["data=phantom", "scheduler=onecycle", "trainer.max_epochs=8"], tmp_path / "out")
    recorded = OmegaConf.create({"trainer": {"max_epochs": 4}})
    with pytest.raises(UserError, match="one-cycle's length is fixed"):
        check_schedule_length(config, recorded, "ckpt_path=x.ckpt")
    check_schedule_length(make_cfg(["data=phantom", "scheduler=cosine", "trainer.max_epochs=8"]), recorded, "x")
