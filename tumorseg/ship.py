"""Turn a training checkpoint into a small model file: the net's weights and the run config only.

    python -m tumorseg.ship CKPT [OUT] [--threshold 0.3] [--tta [affine]] [--seed-threshold 0.7]   (OUT: the reference model's place)
    python -m tumorseg.ship CKPT OUT --ensemble CKPT2 [...]        (logits of several runs averaged)
    python -m tumorseg.ship CKPT OUT --soup CKPT2 [...]            (weights of several runs averaged)

--threshold, --tta and --seed-threshold store the evaluation choices made for this model on held-out subjects: `evaluate`
and `predict` use them unless the command sets threshold=, tta= or postprocess.seed_threshold= itself. CKPT may also be a
model file written by ship (to change those choices).

The file loads with torch.load(weights_only=True) (tensors and plain data, no pickled code), and
`evaluate`, `predict` and `export` take it as ckpt_path=OUT.
"""

import argparse
from pathlib import Path

import torch

from tumorseg.errors import UserError, exit_on_user_error
from tumorseg.inference import REFERENCE_MODEL, load_checkpoint, load_predictor, predictor_of
from tumorseg.tta import tta_choice


def ship(ckpt_path: str | Path, out: str | Path = REFERENCE_MODEL, threshold: float = 0.5, tta: bool | str = False,
         ensemble: list[str | Path] = (), soup: list[str | Path] = (), seed_threshold: float = 0.0) -> Path:
    """Write the slim model file (of ckpt_path alone, or combined with the ensemble or soup checkpoints); check it."""
    if not 0 < threshold < 1:
        raise UserError(f"--threshold {threshold} must be between 0 and 1: e.g. --threshold 0.3")
    if not 0 <= seed_threshold <= 1:
        raise UserError(f"--seed-threshold {seed_threshold} must be between 0 (off) and 1: e.g. --seed-threshold 0.7")
    if ensemble and soup:
        raise UserError("--ensemble and --soup cannot be combined: choose one")
    paths = [ckpt_path, *(ensemble or soup)]
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
    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**model, "hyper_parameters": {"run_config": ckpts[0]["hyper_parameters"]["run_config"]},
                "inference": {"threshold": threshold, "tta": tta_choice(tta), "seed_threshold": seed_threshold}}, out)
    after = load_predictor(out)
    x = torch.randn(2, after.channels, after.image_size, after.image_size, generator=torch.Generator().manual_seed(0))
    if not soup and not torch.allclose(torch.stack([b.logits(x) for b in befores]).mean(0), after.logits(x), atol=1e-5):
        raise UserError(f"{out} does not reproduce {', '.join(map(str, paths))}: report this as a bug")
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


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tumorseg.ship", description=__doc__.splitlines()[0])
    parser.add_argument("ckpt", help="a checkpoint written by tumorseg.train")
    parser.add_argument("out", nargs="?", default=str(REFERENCE_MODEL), help="the model file to write")
    parser.add_argument("--threshold", type=float, default=0.5, help="probability above which a pixel is tumor")
    parser.add_argument("--tta", nargs="?", const="flip", default="none", metavar="affine",
                        help="average with the left-right flipped prediction (--tta affine: 10 views, tumorseg.tta)")
    parser.add_argument("--seed-threshold", type=float, default=0.0, metavar="P",
                        help="keep a predicted 3D region only if it holds a pixel above P (0: off)")
    parser.add_argument("--ensemble", nargs="+", default=[], metavar="CKPT",
                        help="more checkpoints of the same recipe: the file holds all nets, their logits averaged")
    parser.add_argument("--soup", nargs="+", default=[], metavar="CKPT",
                        help="more checkpoints of the same recipe: one net with their weights averaged")
    args = parser.parse_args(argv)
    out = ship(args.ckpt, args.out, args.threshold, args.tta, args.ensemble, args.soup, args.seed_threshold)
    print(f"written: {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
