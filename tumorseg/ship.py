"""Turn a training checkpoint into a small model file: the net's weights and the run config only.

    python -m tumorseg.ship CKPT [OUT] [--threshold 0.3] [--tta]   (OUT: the reference model's place)

--threshold and --tta store the evaluation choices made for this model on held-out subjects: `evaluate`
and `predict` use them unless the command sets threshold= or tta= itself. CKPT may also be a
model file written by ship (to change those choices).

The file loads with torch.load(weights_only=True) (tensors and plain data, no pickled code), and
`evaluate`, `predict` and `export` take it as ckpt_path=OUT.
"""

import argparse
from pathlib import Path

import torch

from tumorseg.errors import UserError, exit_on_user_error
from tumorseg.inference import REFERENCE_MODEL, load_checkpoint, load_predictor, predictor_of


def ship(ckpt_path: str | Path, out: str | Path = REFERENCE_MODEL, threshold: float = 0.5, tta: bool = False) -> Path:
    """Write the slim model file; check that it loads and gives the checkpoint's outputs."""
    if not 0 < threshold < 1:
        raise UserError(f"--threshold {threshold} must be between 0 and 1: e.g. --threshold 0.3")
    ckpt = load_checkpoint(ckpt_path)
    before = predictor_of(ckpt, ckpt_path)  # refuses a checkpoint that is not tumorseg's
    config = ckpt["hyper_parameters"]["run_config"]
    weights = {k: v.clone() for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    source = ckpt.get("source") or {"checkpoint": Path(ckpt_path).name, "epoch": ckpt.get("epoch"),
                                     "global_step": ckpt.get("global_step")}
    torch.save({"state_dict": weights, "hyper_parameters": {"run_config": config}, "source": source,
                "inference": {"threshold": threshold, "tta": tta}}, out)
    after = load_predictor(out)
    x = torch.randn(2, before.channels, before.image_size, before.image_size, generator=torch.Generator().manual_seed(0))
    if not torch.equal(before.logits(x), after.logits(x)):
        raise UserError(f"{out} does not reproduce {ckpt_path}: report this as a bug")
    return out


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tumorseg.ship", description=__doc__.splitlines()[0])
    parser.add_argument("ckpt", help="a checkpoint written by tumorseg.train")
    parser.add_argument("out", nargs="?", default=str(REFERENCE_MODEL), help="the model file to write")
    parser.add_argument("--threshold", type=float, default=0.5, help="probability above which a pixel is tumor")
    parser.add_argument("--tta", action="store_true", help="average with the left-right flipped prediction")
    args = parser.parse_args(argv)
    out = ship(args.ckpt, args.out, args.threshold, args.tta)
    print(f"written: {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
