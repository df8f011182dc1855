"""Turn a training checkpoint into a small model file: the net's weights and the run config only.

    tumorseg ship ckpt_path=CKPT output=MODEL.pt [threshold=0.3] [tta=affine] [seed_threshold=0.7]
    tumorseg ship ckpt_path=CKPT output=MODEL.pt ensemble=[CKPT2,CKPT3]   (logits of several runs averaged)
    tumorseg ship ckpt_path=CKPT output=MODEL.pt soup=[CKPT2,CKPT3]       (weights of several runs averaged)

threshold, tta and seed_threshold store the evaluation choices made for this model on held-out subjects: `evaluate`
and `predict` use them unless the command sets threshold=, tta= or postprocess.seed_threshold= itself. CKPT may also be a
model file written by ship (to change those choices). An existing output is replaced only with overwrite=true.

The file loads with torch.load(weights_only=True) (tensors and plain data, no pickled code), and
`evaluate`, `predict` and `export` take it as ckpt_path=OUT.
"""

from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from tumorseg import CONF_DIR
from tumorseg.config_checks import check_config
from tumorseg.errors import UserError, exit_on_user_error
from tumorseg.inference import load_checkpoint, load_predictor, predictor_of
from tumorseg.tta import tta_choice


def ship(ckpt_path: str | Path, out: str | Path, threshold: float = 0.5, tta: bool | str = False,
         ensemble: list[str | Path] = (), soup: list[str | Path] = (), seed_threshold: float = 0.0,
         overwrite: bool = False) -> Path:
    """Write the slim model file (of ckpt_path alone, or combined with the ensemble or soup checkpoints); check it."""
    if not 0 < threshold < 1:
        raise UserError(f"threshold={threshold} must be between 0 and 1: e.g. threshold=0.3")
    if not 0 <= seed_threshold <= 1:
        raise UserError(f"seed_threshold={seed_threshold} must be between 0 (off) and 1: e.g. seed_threshold=0.7")
    if ensemble and soup:
        raise UserError("ensemble= and soup= cannot be combined: choose one")
    paths = [ckpt_path, *(ensemble or soup)]
    out = Path(out).expanduser()
    if out.is_dir():
        raise UserError(f"output={out} is a folder: name the model file, e.g. output={out / 'model.pt'}")
    if any(out.resolve() == Path(p).expanduser().resolve() for p in paths):
        raise UserError(f"output={out} is one of the files it is made from: write the model file elsewhere")
    if out.exists() and not overwrite:
        raise UserError(f"output={out} exists: choose another file, or add overwrite=true to replace it")
    ckpts = [load_checkpoint(p) for p in paths]
    befores = [predictor_of(c, p) for c, p in zip(ckpts, paths)]  # refuses a checkpoint that is not tumorseg's
    if len(paths) > 1:
        check_combinable(ckpts, befores, paths)
    weights = [{k: v.clone() for k, v in c["state_dict"].items() if k.startswith("net.")} for c in ckpts]
    sources = [c.get("source") or {"checkpoint": Path(p).name, "epoch": c.get("epoch"), "global_step": c.get("global_step")}
               for c, p in zip(ckpts, paths)]
    if ensemble:
        model = {"state_dict": {k.replace("net.", f"net.members.{i}.", 1): v for i, w in enumerate(weights) for k, v in w.items()},
                 "source": {"ensemble": sources}, "members": len(paths)}
    elif soup:
        model = {"state_dict": {k: mean_of([w[k] for w in weights]) for k in weights[0]}, "source": {"soup": sources}}
    else:  # one file, possibly an ensemble file re-shipped with other choices
        model = {"state_dict": weights[0], "source": sources[0], **{k: v for k, v in ckpts[0].items() if k == "members"}}
    out.parent.mkdir(parents=True, exist_ok=True)
    draft = out.with_name(out.name + ".part")  # checked before it takes the output's name
    try:
        torch.save({**model, "hyper_parameters": {"run_config": ckpts[0]["hyper_parameters"]["run_config"]},
                    "inference": {"threshold": threshold, "tta": tta_choice(tta), "seed_threshold": seed_threshold}},
                   draft)
        after = load_predictor(draft)
        x = torch.randn(2, after.channels, after.image_size, after.image_size, generator=torch.Generator().manual_seed(0))
        if not soup and not torch.allclose(torch.stack([b.logits(x) for b in befores]).mean(0), after.logits(x),
                                           atol=1e-5):
            raise UserError(f"{out} would not reproduce {', '.join(map(str, paths))}, not written: report this as a bug")
        draft.replace(out)
    finally:
        draft.unlink(missing_ok=True)
    return out


def mean_of(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Element-wise mean of float tensors; integer ones (BatchNorm's batch counter) are taken from the first."""
    if not tensors[0].is_floating_point():
        return tensors[0].clone()
    return torch.stack([t.float() for t in tensors]).mean(0).to(tensors[0].dtype)


def check_combinable(ckpts: list[dict], predictors: list, paths: list) -> None:
    """Nets combine only if each is one net of the same shape, reading its input the same way."""
    def shape(c, p):
        config = c["hyper_parameters"]["run_config"]
        return config["model"], p.image_size, p.mean, p.std, p.context_slices

    first = shape(ckpts[0], predictors[0])
    for c, p, path in zip(ckpts, predictors, paths):
        if (c.get("members") or 1) > 1:
            raise UserError(f"{path} is already an ensemble: combine the checkpoints it was made of instead")
        if shape(c, p) != first:
            raise UserError(f"{path} differs from {paths[0]} in its model or input (model config, image size, "
                            f"normalization or context slices): combine runs of one recipe")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="ship")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    check_config(cfg)
    if not cfg.ckpt_path:
        raise UserError("ckpt_path is not set: ckpt_path=<run dir>/checkpoints/last.ckpt (or a model file to re-ship)")
    if not cfg.output:
        raise UserError("output is not set: output=<file>.pt, where the model file goes")
    out = ship(cfg.ckpt_path, cfg.output, float(cfg.threshold), cfg.tta, list(cfg.ensemble or []),
               list(cfg.soup or []), float(cfg.seed_threshold), bool(cfg.overwrite))
    print(f"written: {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
