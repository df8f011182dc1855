"""Export a checkpoint to ONNX (dynamic batch), optionally int8, and check it against PyTorch with ONNX Runtime.

    python -m tumorseg.export ckpt_path=CKPT output=model.onnx
    python -m tumorseg.export output=model.int8.onnx quantize=int8 calibration_dir=<data>/train
    python -m tumorseg.export format=web output=DIR [ckpt_path=CKPT]   a page that segments in the browser

The file carries the model's preprocessing and evaluation choices: evaluate and predict run it (ckpt_path=model.onnx).
"""

import tempfile
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from tumorseg import CONF_DIR
from tumorseg.data.decode import read_gray
from tumorseg.errors import UserError, exit_on_user_error
from tumorseg.files.output_files import replacing
from tumorseg.inference.model_file import ModelFile, model_path, onnx_metadata, read, write_onnx_metadata
from tumorseg.inference.onnx_export import export_onnx, quantize_int8
from tumorseg.inference.runtime import int8_export_of, runner_for
from tumorseg.inference.segment import model_inputs
from tumorseg.inference.sources import image_subjects
from tumorseg.inference.two_stage import single_graph
from tumorseg.settings.rules import check_config
from tumorseg.web.page_folder import write_page_folder


def calibration_batches(model: ModelFile, folder: str | None, slices: int, batch: int = 8) -> list[np.ndarray]:
    """Normalized inputs of `slices` slices spread evenly over folder's subjects, neighbours included, in batches."""
    if not folder:
        raise UserError("quantize=int8 needs calibration_dir=<data>/train: slices like those the model was trained on "
                        "set the int8 ranges")
    _, subjects = image_subjects(folder)
    files = [(s, i) for s in subjects for i in range(len(s.files))]
    picks = np.unique(np.linspace(0, len(files) - 1, min(slices, len(files))).round().astype(int))
    chosen: dict[int, list[int]] = {}
    for k in picks:
        subject, i = files[k]
        chosen.setdefault(subjects.index(subject), []).append(i)
    inputs = []
    for s, positions in chosen.items():  # a picked slice's neighbours are read from its subject
        subject = subjects[s]
        grays = [read_gray(f) for f in subject.files]
        inputs.append(model_inputs(model.preprocessing, grays, subject.files)[positions])
    normalized = model.preprocessing.normalize(np.concatenate(inputs)).numpy()
    return [normalized[i:i + batch] for i in range(0, len(normalized), batch)]


def mask_agreement(a: np.ndarray, b: np.ndarray, threshold: float) -> float:
    """Dice between the masks of two logit arrays at a probability threshold (1.0 when both are empty)."""
    cut = float(np.log(threshold / (1 - threshold)))
    ma, mb = a > cut, b > cut
    total = int(ma.sum() + mb.sum())
    return 1.0 if total == 0 else 2 * int((ma & mb).sum()) / total


def export(cfg: DictConfig) -> tuple[Path, float, float]:
    """Write the ONNX model; return (path, max |onnx - torch| of the logits, Dice of its masks vs torch's).

    fp32 is compared on random input; int8 on the calibration slices, where masks are meaningful. A file that
    fails its check is not written (an existing one at cfg.output stays).
    """
    check_config(cfg)
    if not cfg.get("output"):
        raise UserError("output is not set: output=model.onnx (format=web: output=<a folder for the page>)")
    if cfg.get("format", "onnx") == "web":
        return export_web(cfg)
    if cfg.quantize not in (None, "int8"):
        raise UserError(f"quantize={cfg.quantize} is not one of null (fp32), int8")
    source = model_path(cfg.get("ckpt_path"))
    out = Path(cfg.output).expanduser()
    if out.is_dir():
        raise UserError(f"output={out} is a folder: name the file, e.g. output={out / 'model.onnx'}")
    if out.resolve() == source.resolve():
        raise UserError(f"output={out} is the model it exports (ckpt_path): write the .onnx elsewhere")
    if out.exists() and not cfg.get("overwrite"):
        raise UserError(f"output={out} exists: choose another file, or add overwrite=true to replace it")
    model = single_graph(read(source))  # refuses a two-stage model: its two nets and the cropping are no one graph
    if model.is_onnx:
        raise UserError(f"ckpt_path={model.path} is already ONNX: export from the .ckpt or .pt it came from")
    calibration = calibration_batches(model, cfg.calibration_dir, cfg.calibration_slices) if cfg.quantize else None
    out.parent.mkdir(parents=True, exist_ok=True)
    with replacing(out) as draft:  # checked before it takes the output's name
        fp32 = draft.with_name(draft.stem + ".fp32.onnx") if cfg.quantize else draft
        try:
            diff, agreement = export_checked(cfg, model, fp32, draft, calibration)
        finally:
            if fp32 != draft:
                fp32.unlink(missing_ok=True)
    return out, diff, agreement


def export_checked(cfg: DictConfig, model: ModelFile, fp32: Path, draft: Path,
                   calibration: list[np.ndarray] | None) -> tuple[float, float]:
    """Write the fp32 graph to fp32 and the model (quantized from it with quantize=int8) to draft, with its
    metadata, and check it against PyTorch: (max |onnx - torch| of the logits, Dice of its masks vs torch's)."""
    import onnxruntime as ort

    prep, out = model.preprocessing, Path(cfg.output).expanduser()
    export_onnx(model.net(), (prep.channels, prep.image_size, prep.image_size), fp32, cfg.opset)
    if cfg.quantize:
        quantize_int8(fp32, draft, calibration)
        inputs = np.concatenate(calibration)
    else:
        inputs = torch.randn(cfg.check_batch, prep.channels, prep.image_size, prep.image_size,
                             generator=torch.Generator().manual_seed(0)).numpy()
    write_onnx_metadata(draft, onnx_metadata(model, cfg.quantize or "32"))
    expected = runner_for(model, "cpu", "32").logits(torch.from_numpy(inputs)).numpy()
    (got,) = ort.InferenceSession(str(draft), providers=["CPUExecutionProvider"]).run(["logits"], {"image": inputs})
    diff, agreement = float(np.abs(got - expected).max()), mask_agreement(got, expected, model.stored.threshold)
    if cfg.quantize and agreement < cfg.min_agreement:
        raise UserError(f"int8 masks agree with fp32 only at Dice {agreement:.3f} < min_agreement={cfg.min_agreement} "
                        f"on the calibration slices, {out} not written: export without quantize, or calibrate "
                        f"on more slices (calibration_slices=)")
    if not cfg.quantize and diff > cfg.tolerance:
        raise UserError(f"ONNX output differs from PyTorch by {diff:.2e} > tolerance={cfg.tolerance}, {out} not "
                        f"written: try another opset=")
    return diff, agreement


def export_web(cfg: DictConfig) -> tuple[Path, float, float]:
    """Write a page folder at cfg.output; return (folder, max |onnx - torch| of the logits, Dice of its masks vs
    torch's: 0.0 and 1.0 when the page takes an existing .onnx as it is).

    The page runs the model's int8 export where it exists (an .onnx given, or the <stem>.int8.onnx beside a .pt or
    .ckpt: as fast as fp32 in WASM and a quarter of the download, docs/web.md), else an fp32 export made and checked
    here as format=onnx checks one.
    """
    if cfg.quantize:
        raise UserError("format=web takes no quantize=: it ships the int8 export beside the model where there is one "
                        "(tumorseg export quantize=int8 output=<model stem>.int8.onnx), else exports fp32")
    source = model_path(cfg.get("ckpt_path"))
    out = Path(cfg.output).expanduser()
    if out.suffix == ".onnx":
        raise UserError(f"output={out} names an .onnx file: format=web writes a folder, e.g. "
                        f"output={out.with_suffix('')}")
    model = single_graph(read(source))  # refuses a two-stage model: its two nets and the cropping are no one graph
    twin = int8_export_of(model)
    if model.is_onnx or twin.is_file():
        onnx = source if model.is_onnx else twin
        write_page_folder(out, read(onnx), onnx, bool(cfg.get("overwrite")))
        return out, 0.0, 1.0
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "model.onnx"
        diff, agreement = export_checked(cfg, model, fp32, fp32, None)
        write_page_folder(out, read(fp32), fp32, bool(cfg.get("overwrite")))
    return out, diff, agreement


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="export")
@exit_on_user_error
def main(cfg: DictConfig) -> float:
    out, diff, agreement = export(cfg)
    if cfg.get("format") == "web":
        print(f"written: {out} (a page that segments a scan in the browser, nothing uploaded; any static host serves "
              f"it): tumorseg serve {out}")
        return agreement
    print(f"written: {out} (input 'image' N x C x H x W, C = 1 + 2 * context_slices, normalized as in training; "
          f"output 'logits'); evaluate and predict run it: ckpt_path={out}")
    if cfg.quantize:
        print(f"max abs logit difference int8 vs torch on the calibration slices: {diff:.2e}")
        print(f"mask Dice int8 vs torch on the calibration slices: {agreement:.4f}")
        return agreement
    print(f"max abs difference onnxruntime vs torch: {diff:.2e}")
    return diff


if __name__ == "__main__":
    main()
