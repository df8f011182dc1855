"""The report of a run: its file names, the JSON of its figures and the Markdown table of them."""

import json
from pathlib import Path

from tumorseg.benchmark.configs import TRAIN_MODELS
from tumorseg.benchmark.settings import BenchSettings


def report_paths(settings: BenchSettings) -> tuple[Path, Path]:
    """(benchmarks*.json, BENCHMARKS*.md) in out=: -gpu on a GPU, -quick with quick=true."""
    suffix = ("-gpu" if settings.device == "cuda" else "") + ("-quick" if settings.quick else "")
    return settings.out / f"benchmarks{suffix}.json", settings.out / f"BENCHMARKS{suffix}.md"


def as_json(r: dict) -> str:
    return json.dumps(r, indent=2) + "\n"


def header(r: dict, command: str) -> list[str]:
    m, args = r["machine"], r["args"]
    extras = "".join(name for key, name in (("cpu_bf16", ", bf16"), ("cpu_int8_vnni", ", VNNI")) if m.get(key))
    return ["# Benchmarks\n", f"Command: `{command}`  ", f"Machine: {m['cpu']}, {m['cores']} cores "
            f"({m['cpu_capability']}{extras}), torch {m['torch']}, GPU: {m['gpu'] or 'none'}  ",
            f"Batch {args['batch_size']}, {args['image_size']}x{args['image_size']}; "
            f"default training setting: {r['default_setting']}\n",
            f"Matmul {args['matmul_n']}²: fp32 {r['matmul_gflops']['fp32']:.0f} GFLOP/s, "
            f"bf16 {r['matmul_gflops']['bf16']:.0f} GFLOP/s\n"]


def training(r: dict) -> list[str]:
    lines = ["## Training (images/s)\n", "| network, setting | Lightning | plain PyTorch | Lightning/plain |",
             "|---|---|---|---|"]
    for name, v in r["train_images_per_s"].items():
        plain, ratio = (f"{v['plain']:.2f}", f"{v['lightning'] / v['plain']:.2f}") if "plain" in v else ("–", "–")
        lines.append(f"| {name} | {v['lightning']:.2f} | {plain} | {ratio} |")
    g = r["train_gflop_per_image"]
    flops = ", ".join(f"{name} {g[name]:.2f}" for name in TRAIN_MODELS)
    return lines + ["", f"Training GFLOP per image: {flops}. "
                    f"Peak {'GPU' if r['machine']['gpu'] else 'resident'} memory of the default model's training at "
                    f"the default batch size ({r['train_peak_memory_batch_size']}, {r['default_setting']}): "
                    f"{r['train_peak_memory_mb']:.0f} MB\n"]


def table(title: str, columns: list[str], rows: list[list[str]]) -> list[str]:
    return [f"## {title}\n", f"| {' | '.join(columns)} |", "|" + "---|" * len(columns),
            *(f"| {' | '.join(row)} |" for row in rows), ""]


def markdown(r: dict, command: str) -> str:
    """The table of a run's figures; a part not measured has no section."""
    lines = header(r, command) + (training(r) if "train_images_per_s" in r else [])
    if "data_images_per_s" in r:
        lines += table("Data pipeline (images/s, no model)", ["augment", "images/s"],
                       [[a, f"{v:.0f}"] for a, v in r["data_images_per_s"].items()])
    if "inference" in r:
        lines += table("Inference of the default model", ["how", "images/s (batch 16)", "ms/slice (batch 1)"],
                       [[k, f"{v['images_per_s_b16']:.1f}", f"{v['ms_per_slice_b1']:.1f}"]
                        for k, v in r["inference"].items()])
    if "segment" in r:
        lines += table("The shipped model through evaluate/predict's path (its TTA and members; slices/s)",
                       ["way", "slices/s", "/ fastest", "runs as", "file"],
                       [[k, f"{v['slices_per_s']:.2f}", f"{v['over_fastest']:.2f}" if "over_fastest" in v else "–",
                         v["runs"] + (f" (the figure of {v['same_as'].split(' (')[0]})" if "same_as" in v else ""),
                         v["model"]] for k, v in r["segment"].items()])
        lines += [f"{v['chosen_by']}\n" for v in r["segment"].values() if v.get("chosen_by")]
    if "volume" in r:
        lines += table("A 512 x 512 CT volume through predict's path (read, net, mask written; slices/s)",
                       ["TTA", "slices/s", "runs as"],
                       [[k, f"{v['slices_per_s']:.2f}", v["runs"]] for k, v in r["volume"].items()])
    lines += table("Targets", ["figure", "value", "target", "met"],
                   [[k, f"{v['value']}{' (' + v['how'] + ')' if 'how' in v else ''}", v["target"],
                     "yes" if v["met"] else "no"] for k, v in r["summary"].items()])
    return "\n".join(lines[:-1]) + "\n"
