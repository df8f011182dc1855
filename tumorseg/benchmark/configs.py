"""The training config a figure is taken with (conf/train.yaml, composed here), and the numeric settings of
training and inference: memory layout, bf16, torch.compile."""

from types import MappingProxyType

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from tumorseg import CONF_MODULE

# name: (channels_last, bf16)
SETTINGS = MappingProxyType({"fp32 NCHW": (False, False), "fp32 channels_last": (True, False),
                             "bf16 channels_last": (True, True)})
COMPILED = " + torch.compile"  # suffix of a training setting whose net is compiled (module.compile=true)
COMPILED_SETTINGS = tuple(f"{s}{COMPILED}" for s, (channels_last, _) in SETTINGS.items() if channels_last)
OTHER_MODELS = ("unet_classic", "unet_fast")  # the paper's channel plan and the cheapest option
TRAIN_MODELS = ("unet", *OTHER_MODELS, "unet_seed")  # model options timed in training


def train_config(device: str, *overrides: str) -> DictConfig:
    """conf/train.yaml with overrides; on a GPU with trainer=gpu (its workers and pinned memory)."""
    trainer = ["trainer=gpu"] if device == "cuda" else []
    overrides = ("paths.root_dir=.", "paths.output_dir=.", *trainer, *overrides)
    if GlobalHydra.instance().is_initialized():  # inside the bench command: its Hydra reads the same configs
        return compose("train", overrides=list(overrides))
    with initialize_config_module(config_module=CONF_MODULE, version_base="1.3"):
        return compose("train", overrides=list(overrides))


def flags(setting: str) -> tuple[bool, bool, bool]:
    """channels_last, bf16, compiled of a training setting."""
    base = setting.removesuffix(COMPILED)
    return (*SETTINGS[base], base != setting)


def default_setting(device: str) -> str:
    """The setting the training config uses by default."""
    cfg = train_config(device)
    bf16 = str(cfg.trainer.precision).startswith("bf16")
    name = "bf16 channels_last" if bf16 else ("fp32 channels_last" if cfg.module.channels_last else "fp32 NCHW")
    return name + (COMPILED if cfg.module.compile else "")
