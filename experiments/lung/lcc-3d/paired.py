"""The shipped evaluation of one model on one folder, without and with LCC, from the same probabilities.

Frozen: ran at commit da5e70e (2026-11-28; its figures committed up to 2fc949c the same day); it imports APIs that
have since changed. Kept as the record of what ran; not linted, not run.

    python experiments/lung/lcc-3d/paired.py CKPT FOLDER OUT.json

Same figures as `python -m tumorseg.evaluate ckpt_path=CKPT data_dir=FOLDER tta=affine threshold=0.3
precision=32 [postprocess.largest_3d=true]`, for half the cost (the 10-view TTA runs once).
"""

import json
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from tumorseg.evaluate import by_subject, dataset_for, final_masks, resolve_folder
from tumorseg.inference import inference_settings, load_predictor, use_device, use_precision
from tumorseg.metrics import SegMetrics
from tumorseg.postprocess import slice_index


def main(ckpt: str, folder: str, out: str) -> None:
    cfg = OmegaConf.create({"threshold": 0.3, "tta": "affine", "precision": "32", "device": "cpu",
                            "postprocess": {"seed_threshold": 0, "largest_3d": False}})
    predictor = load_predictor(ckpt)
    dataset = dataset_for(predictor, resolve_folder(folder, None))
    use_device(cfg, predictor), use_precision(cfg, predictor)
    plain = inference_settings(cfg, predictor)
    arms = {"plain": plain, "lcc": plain._replace(largest_3d=True)}
    metrics = {name: SegMetrics(threshold=0.5) for name in arms}
    with torch.no_grad():
        for positions, probs, y in by_subject(predictor, dataset, 16, plain.tta):
            numbers = [slice_index(dataset.samples[i].image) for i in positions]
            subjects = torch.tensor([dataset.subject_ids[i] for i in positions])
            for name, choices in arms.items():
                masks = final_masks(probs[:, 0].numpy(), numbers, choices, 0)
                metrics[name].update(torch.from_numpy(masks)[:, None].float(), y, subjects)
    result = {"ckpt_path": ckpt, "data_dir": folder, "threshold": 0.3, "tta": "affine", "precision": "32",
              **{name: {k: round(float(v), 6) for k, v in m.compute().items()} for name, m in metrics.items()}}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    print(out, *(f"{name}: {result[name]['dice']:.4f} / {result[name]['dice_per_subject']:.4f}" for name in arms))


if __name__ == "__main__":
    main(*sys.argv[1:])
