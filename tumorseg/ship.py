"""Turn a training checkpoint into a small model file: the net's weights and the run config only.

    tumorseg ship ckpt_path=CKPT output=MODEL.pt [threshold=0.3] [tta=affine] [seed_threshold=0.7]
    tumorseg ship ckpt_path=CKPT output=MODEL.pt ensemble=[CKPT2,CKPT3]   (logits of several runs averaged)
    tumorseg ship ckpt_path=CKPT output=MODEL.pt soup=[CKPT2,CKPT3]       (weights of several runs averaged)
    tumorseg ship ckpt_path=CKPT output=MODEL.pt crop=CROP_CKPT [proposal_threshold=0.2]   (a two-stage model)

threshold, tta and seed_threshold store the evaluation choices made for this model on held-out subjects: `evaluate`
and `predict` use them unless the command sets threshold=, tta= or postprocess.seed_threshold= itself. CKPT may also
be a model file written by ship (to change those choices). An existing output is replaced only with overwrite=true.
crop= adds a crop model (trained with data.crops) as stage 2: it outlines the regions CKPT proposes above
proposal_threshold (default: the one it was trained with), docs/two-stage.md.

The file loads with torch.load(weights_only=True) (tensors and plain data, no pickled code), and
`evaluate`, `predict` and `export` take it as ckpt_path=OUT.
"""

from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from tumorseg import CONF_DIR
from tumorseg.errors import UserError, exit_on_user_error
from tumorseg.files.output_files import replacing
from tumorseg.inference.combining import combine, joined
from tumorseg.inference.model_file import ModelFile, Stored, read, save
from tumorseg.inference.runtime import runner_for
from tumorseg.settings.rules import check_config


def ship(ckpt_path: str | Path, out: str | Path, threshold: float = 0.5, tta: bool | str = False,
         ensemble: list[str | Path] = (), soup: list[str | Path] = (), seed_threshold: float = 0.0,
         overwrite: bool = False, crop: str | Path | None = None, proposal_threshold: float | None = None) -> Path:
    """Write the slim model file (of ckpt_path alone, or combined with the ensemble or soup checkpoints; with crop, a
    crop model as its stage 2); check it."""
    if not 0 < threshold < 1:
        raise UserError(f"threshold={threshold} must be between 0 and 1: e.g. threshold=0.3")
    if not 0 <= seed_threshold <= 1:
        raise UserError(f"seed_threshold={seed_threshold} must be between 0 (off) and 1: e.g. seed_threshold=0.7")
    if ensemble and soup:
        raise UserError("ensemble= and soup= cannot be combined: choose one")
    paths = [Path(p).expanduser() for p in (ckpt_path, *(ensemble or soup), *([crop] if crop else []))]
    out = Path(out).expanduser()
    if out.is_dir():
        raise UserError(f"output={out} is a folder: name the model file, e.g. output={out / 'model.pt'}")
    if any(out.resolve() == p.resolve() for p in paths):
        raise UserError(f"output={out} is one of the files it is made from: write the model file elsewhere")
    if out.exists() and not overwrite:
        raise UserError(f"output={out} exists: choose another file, or add overwrite=true to replace it")
    models = [read(p) for p in paths[:len(paths) - bool(crop)]]  # refuses a file that is not tumorseg's
    stage2 = read(paths[-1], "crop") if crop else None
    for model in models:
        if model.is_onnx:
            raise UserError(f"{model.path} is an ONNX export: ship takes the .ckpt or .pt it was exported from")
    stored = Stored.of({"threshold": threshold, "tta": tta, "seed_threshold": seed_threshold})
    shipped = combine(models, "ensemble" if ensemble else "soup", stored) if len(models) > 1 \
        else models[0].with_choices(stored)
    shipped = joined(shipped, stage2, proposal_threshold)
    out.parent.mkdir(parents=True, exist_ok=True)
    with replacing(out) as draft:  # checked before it takes the output's name
        after = read(save(shipped, draft))
        prep = after.preprocessing
        x = torch.randn(2, prep.channels, prep.image_size, prep.image_size, generator=torch.Generator().manual_seed(0))
        expected = torch.stack([runner_for(m, "cpu", "32").logits(x) for m in models]).mean(0)
        if not soup and not torch.allclose(expected, runner_for(after, "cpu", "32").logits(x), atol=1e-5):
            raise UserError(f"{out} would not reproduce {', '.join(map(str, paths))}, not written: "
                            "report this as a bug")
        if shipped.stage2 is not None and not same_logits(shipped.stage2, after.stage2):
            raise UserError(f"{out} would not reproduce its crop model {shipped.stage2.path}, not written: "
                            "report this as a bug")
    return out


def same_logits(a: ModelFile, b: ModelFile) -> bool:
    """a and b give the same logits on random input of a's crop size (a two-stage model's stage 2, before and after)."""
    size = int(a.run_config["data"]["crops"]["input_size"])
    x = torch.randn(2, a.preprocessing.channels, size, size, generator=torch.Generator().manual_seed(0))
    return torch.allclose(runner_for(a, "cpu", "32").logits(x), runner_for(b, "cpu", "32").logits(x), atol=1e-5)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="ship")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    check_config(cfg)
    if not cfg.ckpt_path:
        raise UserError("ckpt_path is not set: ckpt_path=<run dir>/checkpoints/last.ckpt (or a model file to re-ship)")
    if not cfg.output:
        raise UserError("output is not set: output=<file>.pt, where the model file goes")
    out = ship(cfg.ckpt_path, cfg.output, float(cfg.threshold), cfg.tta, list(cfg.ensemble or []),
               list(cfg.soup or []), float(cfg.seed_threshold), bool(cfg.overwrite), cfg.get("crop"),
               None if cfg.get("proposal_threshold") is None else float(cfg.proposal_threshold))
    print(f"written: {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
