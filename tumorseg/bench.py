"""Benchmark on this machine: training (Lightning vs plain PyTorch), data pipeline, inference, FLOP
efficiency, memory. Prints a table; writes BENCHMARKS.md and benchmarks.json into out= (outputs/bench).

    tumorseg bench                          # full run
    tumorseg bench quick=true               # about a minute: small images, few steps
    tumorseg bench parts=[train,infer] batch_size=8 image_size=256
    tumorseg bench device=cuda batch_size=32   # writes BENCHMARKS-gpu.md
    tumorseg bench out=experiments          # the recorded figures of the project's machine
"""

import argparse
import copy
import gc
import itertools
import json
import multiprocessing
import os
import platform
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import hydra
import lightning as L
import numpy as np
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from tumorseg import CONF_DIR, CONF_MODULE
from tumorseg.data import SegDataModule, generate_phantom
from tumorseg.errors import UserError, exit_on_user_error
from tumorseg.hardware import cpu_has_bf16, cpu_has_vnni
from tumorseg.module import SegModule
from tumorseg.onnx_export import export_onnx, quantize_int8
from tumorseg.runtime import OnnxNet, Runner

PARTS = ("train", "data", "infer", "segment", "volume")
AUGMENTS = ("none", "flip", "rotate", "elastic", "all")
# name: (channels_last, bf16)
SETTINGS = {"fp32 NCHW": (False, False), "fp32 channels_last": (True, False), "bf16 channels_last": (True, True)}
COMPILED = " + torch.compile"  # suffix of a training setting whose net is compiled (module.compile=true)


OTHER_MODELS = ("unet_classic", "unet_fast")  # the paper's channel plan and the cheapest option
TRAIN_MODELS = ("unet", *OTHER_MODELS, "unet_seed")  # model options timed in training
COMPILED_SETTINGS = [f"{s}{COMPILED}" for s, (channels_last, _) in SETTINGS.items() if channels_last]


def flags(setting: str) -> tuple[bool, bool, bool]:
    """channels_last, bf16, compiled of a training setting."""
    base = setting.removesuffix(COMPILED)
    return (*SETTINGS[base], base != setting)


def machine() -> dict:
    """What the figures were measured on."""
    cpu = platform.processor()
    if Path("/proc/cpuinfo").is_file():
        cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), cpu)
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpu_bf16": cpu_has_bf16(),
            "cpu_int8_vnni": cpu_has_vnni(), "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


DEVICE = "cpu"  # set by main(): cpu or cuda


def config(*overrides: str):
    trainer = ["trainer=gpu"] if DEVICE == "cuda" else []  # the GPU config's workers and pinned memory
    overrides = ["paths.root_dir=.", "paths.output_dir=.", *trainer, *overrides]
    if GlobalHydra.instance().is_initialized():  # inside the bench command: its Hydra reads the same configs
        return compose("train", overrides=overrides)
    with initialize_config_module(config_module=CONF_MODULE, version_base="1.3"):
        return compose("train", overrides=overrides)


def autocast(bf16: bool):
    return torch.autocast(DEVICE, dtype=torch.bfloat16) if bf16 else nullcontext()


def sync() -> None:
    """Waits for queued GPU work, so that a timer reads the work done (CUDA runs asynchronously)."""
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def matmul_gflops(dtype: torch.dtype, n: int, reps: int) -> float:
    a, b = torch.randn(n, n, dtype=dtype, device=DEVICE), torch.randn(n, n, dtype=dtype, device=DEVICE)
    for _ in range(2):
        a @ b
    sync()
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync()
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def datamodule(root: Path, args, augment: str = "none", workers: int | None = None) -> SegDataModule:
    cfg = config(f"augment={augment}")
    dm = SegDataModule(str(root), {"name": "full"}, instantiate(cfg.augment) or None, image_size=args.image_size,
                       batch_size=args.batch_size, num_workers=cfg.data.num_workers if workers is None else workers,
                       pin_memory=DEVICE == "cuda")
    dm.setup()
    return dm


class Throughput(L.Callback):
    """Images per second of training batches after `warmup` batches."""

    def __init__(self, warmup: int):
        self.warmup, self.images, self.start, self.end = warmup, 0, 0.0, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.warmup:
            sync()
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx >= self.warmup:
            self.images += batch[0].shape[0]
            sync()
            self.end = time.perf_counter()

    @property
    def rate(self) -> float:
        return self.images / max(self.end - self.start, 1e-9)


def lightning_rate(model: str, dm: SegDataModule, setting: str, args) -> float:
    """Training images/s through the real path: SegModule (loss, metrics, logging) + Trainer."""
    channels_last, bf16, compiled = flags(setting)
    cfg = config(f"model={model}")
    module = SegModule(instantiate(cfg.model), instantiate(cfg.loss), instantiate(cfg.optimizer),
                       channels_last=channels_last, compile=compiled)
    timer = Throughput(args.warmup)
    trainer = L.Trainer(accelerator="gpu" if DEVICE == "cuda" else "cpu", devices=1, max_epochs=1,
                        benchmark=DEVICE == "cuda", limit_train_batches=args.warmup + args.steps,
                        limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, callbacks=[timer],
                        precision="bf16-mixed" if bf16 else "32-true")
    trainer.fit(module, datamodule=dm)
    return timer.rate


def plain_rate(model: str, dm: SegDataModule, setting: str, args) -> float:
    """Training images/s of a hand-written loop: same net, loss, optimizer, data and settings."""
    channels_last, bf16, compiled = flags(setting)
    cfg = config(f"model={model}")
    net, loss_fn = instantiate(cfg.model).train().to(DEVICE), instantiate(cfg.loss)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    if compiled:
        net.compile()
    optimizer = instantiate(cfg.optimizer)(params=net.parameters())
    batches = iter(dm.train_dataloader())
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            sync()
            start = time.perf_counter()
        x, y, _ = next(batches)
        x, y = x.to(DEVICE, non_blocking=True), y.to(DEVICE, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(bf16):
            loss = loss_fn(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sync()
    return args.steps * args.batch_size / (time.perf_counter() - start)


def train_flops(model: str, args) -> float:
    """FLOPs of one training step (forward + backward) per image."""
    from torch.utils.flop_counter import FlopCounterMode

    net, loss_fn = instantiate(config(f"model={model}").model), instantiate(config().loss)
    x = torch.randn(2, 1, args.image_size, args.image_size)
    with FlopCounterMode(display=False) as counter:
        loss_fn(net(x), torch.zeros_like(x)).backward()
    return counter.get_total_flops() / 2


def data_rate(dm: SegDataModule, batches: int) -> float:
    """Images/s the train loader delivers (augmentation included), without a model, in steady state."""
    epoch = dm.train_dataloader()  # one loader, so that its persistent workers serve every epoch
    loader = (batch for _ in itertools.count() for batch in epoch)
    # Workers start one by one and then hold 2 batches each ready: skip the start, and time many
    # times the prefetched batches, or the figure measures start-up (many workers) or the buffer.
    in_flight = 2 * max(dm.num_workers, 1)
    for _ in range(in_flight + 1):
        next(loader)
    start, images = time.perf_counter(), 0
    for _ in range(max(batches, 5 * in_flight)):
        images += next(loader)[0].shape[0]
    return images / (time.perf_counter() - start)


def inference_rates(args, tmp: Path) -> dict[str, dict[str, float]]:
    """Images/s at batch 16 and ms per slice at batch 1 for each way of running the default model."""
    net = instantiate(config().model).eval()
    size = args.image_size

    def copy_of(channels_last: bool, device: str = DEVICE) -> torch.nn.Module:  # .to() works in place: one copy each
        layout = torch.channels_last if channels_last else torch.contiguous_format
        return copy.deepcopy(net).to(device, memory_format=layout)

    runners = {}
    for name, (channels_last, bf16) in SETTINGS.items():
        runners[f"eager {name}"] = (lambda m, cl, b: lambda x: _infer(m, x, cl, b))(copy_of(channels_last),
                                                                                  channels_last, bf16)
    if args.compile:
        compiled = torch.compile(copy_of(True))
        runners["torch.compile channels_last"] = lambda x: _infer(compiled, x, True, False)
        compiled_bf16 = torch.compile(copy_of(True))
        runners["torch.compile bf16 channels_last"] = lambda x: _infer(compiled_bf16, x, True, True)
    import onnxruntime as ort

    provider = "CUDAExecutionProvider" if DEVICE == "cuda" else "CPUExecutionProvider"
    if provider in ort.get_available_providers():  # the plain onnxruntime wheel has no CUDA provider
        fp32 = export_onnx(copy_of(False, "cpu"), (1, size, size), tmp / "model.onnx")
        session = ort.InferenceSession(str(fp32), providers=[provider])
        runners["ONNX Runtime fp32"] = lambda x: session.run(None, {"image": x.cpu().numpy()})
        if DEVICE == "cpu":  # the int8 kernels are the CPU's (VNNI); the ranges of random input do for timing
            calibration = [np.random.default_rng(i).standard_normal((8, 1, size, size), np.float32) for i in range(2)]
            int8 = OnnxNet(quantize_int8(fp32, tmp / "model.int8.onnx", calibration))
            runners["ONNX Runtime int8"] = lambda x: int8(x.cpu())
    out = {}
    for name, run in runners.items():
        try:
            out[name] = {"images_per_s_b16": _rate(run, 16, size, args.infer_reps),
                         "ms_per_slice_b1": 1000 / _rate(run, 1, size, args.infer_reps * 4)}
        except Exception as err:  # torch.compile needs a compiler toolchain: one missing costs one row
            print(f"  inference {name}: failed, left out ({type(err).__name__}: {str(err)[:200]})", flush=True)
            continue
        print(f"  inference {name}: {out[name]['images_per_s_b16']:.1f} img/s (b16), "
              f"{out[name]['ms_per_slice_b1']:.1f} ms (b1)", flush=True)
    return out


@torch.no_grad()
def _infer(model, x, channels_last: bool, bf16: bool):
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(bf16):
        return model(x)


def _rate(run, batch: int, size: int, reps: int) -> float:
    x = torch.randn(batch, 1, size, size, device=DEVICE)
    for _ in range(2):
        run(x)
    sync()
    start = time.perf_counter()
    for _ in range(reps):
        run(x)
    sync()
    return batch * reps / (time.perf_counter() - start)


# How evaluate/predict may run the shipped model: (runtime=, precision=). "auto" is what this CPU gets by default.
# UNFOLDED runs as the fp32 way did before the batch norms were folded into the convolutions (runtime.fold_batch_norms).
UNFOLDED = "PyTorch fp32, batch norms not folded (the default of a CPU without bf16 before runtime=auto)"
SEGMENT_WAYS = {UNFOLDED: ("pytorch", "32"),
                "PyTorch fp32 (runtime=pytorch precision=32)": ("pytorch", "32"),
                "PyTorch bf16 (runtime=auto on a CPU with bf16 or a GPU)": ("pytorch", "bf16"),
                "ONNX Runtime int8 export (runtime=auto on a CPU without bf16)": ("onnxruntime", "auto"),
                "default here (runtime=auto, precision=auto)": ("auto", "auto")}


def segment_rates(args, root: Path) -> dict[str, dict]:
    """Slices/s of the shipped model through the segmentation path (its TTA and members), each way side by side."""
    from tumorseg.data.decode import read_gray
    from tumorseg.segment import segmenter_for

    files = sorted((root / "val" / "images").rglob("*.png"))[:args.segment_slices]
    slices, names = [read_gray(f) for f in files], [Path(f.name) for f in files]
    out = {}
    for name, (runtime, precision) in SEGMENT_WAYS.items():
        if precision == "bf16" and DEVICE == "cpu" and not cpu_has_bf16():
            continue  # emulated bf16 is slower than fp32: not a way anyone would run
        segmenter = segmenter_for(OmegaConf.create({"runtime": runtime, "precision": precision, "device": DEVICE}))
        if name == UNFOLDED:
            net = segmenter.model.net().to(segmenter.runner.device, memory_format=torch.channels_last)
            segmenter.runner = Runner(net, segmenter.runner.device, "32", "pytorch")
        segmenter.subject(slices[:1], names[:1])  # warm-up: first-call allocation, kernel choice
        start = time.perf_counter()
        segmenter.subject(slices, names)
        rate = len(slices) / (time.perf_counter() - start)
        out[name] = {"slices_per_s": rate, "runs": segmenter.runner.describe(), "model": segmenter.model.path.name}
        print(f"  segment {name}: {rate:.2f} slices/s ({out[name]['runs']}, {out[name]['model']})", flush=True)
    return out


def volume_rates(args, tmp: Path) -> dict[str, dict]:
    """Slices/s of predict's volume path with the shipped model (read, slices, net, mask on the input's grid,
    written), on a 512 x 512 phantom CT volume, with the model's TTA and without."""
    from tumorseg.data.phantom3d import write_nifti
    from tumorseg.data.volumes import mask_volume_like, read_volume, write_volume
    from tumorseg.segment import segmenter_for
    from tumorseg.volume_segment import segment_volume

    image_path, _ = write_nifti(tmp / "volume", "ct", size=(512, 512, args.volume_slices))
    out = {}
    for name, tta in (("the model's TTA (affine, 10 views)", None), ("no TTA (tta=false)", False)):
        segmenter = segmenter_for(OmegaConf.create({"device": DEVICE, "tta": tta}))
        start = time.perf_counter()
        image = read_volume(image_path)
        _, result = segment_volume(segmenter, image, None)
        write_volume(mask_volume_like(np.stack(result.masks), image), tmp / "volume" / "ct_mask.nii.gz")
        rate = args.volume_slices / (time.perf_counter() - start)
        out[name] = {"slices_per_s": rate, "runs": segmenter.runner.describe(), "slices": args.volume_slices}
        print(f"  volume {name}: {rate:.2f} slices/s ({out[name]['runs']})", flush=True)
    return out


STATUS, CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def reset_peak_rss() -> bool:
    """Lower this process's resident-memory high-water mark to its present size (Linux); False where it cannot."""
    try:
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_memory_mb() -> float:
    """Peak GPU memory allocated on a GPU, else peak resident memory of this process (since its last reset)."""
    if DEVICE == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    if STATUS.is_file():  # VmHWM follows reset_peak_rss(); ru_maxrss does not
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _training_peak_mb(root: str, args: argparse.Namespace, device: str) -> tuple[float, int]:
    """Peak memory of a few training steps of the default model and setting at the config's batch size."""
    global DEVICE
    DEVICE = device
    args = argparse.Namespace(**{**vars(args), "batch_size": config().data.batch_size, "warmup": 1, "steps": 2})
    if DEVICE == "cuda":
        torch.cuda.reset_peak_memory_stats()
    lightning_rate("unet", datamodule(Path(root), args), default_setting(), args)
    return peak_memory_mb(), args.batch_size


def training_peak_mb(root: Path, args: argparse.Namespace) -> tuple[float, int]:
    """(peak MB, batch size). A process's peak resident memory only grows: on a CPU it is reset here first
    (Linux), or, where it cannot be, measured in a fresh process."""
    gc.collect()
    if DEVICE == "cuda" or reset_peak_rss():
        return _training_peak_mb(str(root), args, DEVICE)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_training_peak_mb, str(root), args, DEVICE).result()


def default_setting() -> str:
    """The setting the training config uses by default."""
    cfg = config()
    bf16 = str(cfg.trainer.precision).startswith("bf16")
    name = "bf16 channels_last" if bf16 else ("fp32 channels_last" if cfg.module.channels_last else "fp32 NCHW")
    return name + (COMPILED if cfg.module.compile else "")


def measure(args) -> dict:
    """Every figure of the requested parts, in one process."""
    parts = set(args.parts.split(","))
    results: dict = {"machine": machine(), "args": vars(args), "default_setting": default_setting()}
    results["matmul_gflops"] = {"fp32": matmul_gflops(torch.float32, args.matmul_n, 5),
                                "bf16": matmul_gflops(torch.bfloat16, args.matmul_n, 5)}
    print(f"  matmul {args.matmul_n}: {results['matmul_gflops']}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        subjects = -(-(args.warmup + args.steps) * args.batch_size // 16) + 1
        root = generate_phantom(Path(tmp) / "phantom", train_subjects=subjects, val_subjects=1, slices=16,
                                size=args.image_size)
        if "train" in parts:
            # first: the process holds no other training's memory yet (its high-water mark is reset too)
            results["train_peak_memory_mb"], results["train_peak_memory_batch_size"] = training_peak_mb(root, args)
            dm = datamodule(root, args)
            train = {}
            def time_training(setting: str) -> None:
                train[f"unet {setting}"] = {"lightning": lightning_rate("unet", dm, setting, args),
                                            "plain": plain_rate("unet", dm, setting, args)}
                print(f"  train unet {setting}: {train[f'unet {setting}']}", flush=True)

            for setting in SETTINGS:
                time_training(setting)
            for setting in COMPILED_SETTINGS if args.compile else []:
                try:
                    time_training(setting)
                except Exception as err:  # torch.compile needs a compiler toolchain: one missing costs one row
                    print(f"  train unet {setting}: failed, left out ({type(err).__name__}: {str(err)[:200]})",
                          flush=True)
            seed_args = argparse.Namespace(**{**vars(args), "warmup": 1, "steps": args.seed_steps})
            train["unet_seed fp32 NCHW"] = {"lightning": lightning_rate("unet_seed", dm, "fp32 NCHW", seed_args),
                                            "plain": plain_rate("unet_seed", dm, "fp32 NCHW", seed_args)}
            print(f"  train unet_seed: {train['unet_seed fp32 NCHW']}", flush=True)
            for other in OTHER_MODELS:
                row = f"{other} {results['default_setting']}"
                train[row] = {"lightning": lightning_rate(other, dm, results["default_setting"], args)}
                print(f"  train {row}: {train[row]}", flush=True)
            results["train_images_per_s"] = train
            results["train_gflop_per_image"] = {m: train_flops(m, args) / 1e9 for m in TRAIN_MODELS}
        if "data" in parts:
            results["data_images_per_s"] = {a: data_rate(datamodule(root, args, a), args.data_batches)
                                            for a in AUGMENTS}
            print(f"  data: {results['data_images_per_s']}", flush=True)
        if "infer" in parts:
            results["inference"] = inference_rates(args, Path(tmp))
        if "segment" in parts:
            shipped = generate_phantom(Path(tmp) / "phantom256", train_subjects=1, val_subjects=2, slices=16, size=256)
            results["segment"] = segment_rates(args, shipped)
        if "volume" in parts:
            results["volume"] = volume_rates(args, Path(tmp))
    results["summary"] = summarize(results)
    return results


def summarize(r: dict) -> dict:
    """Headline ratios and the targets they are held to."""
    out: dict = {}  # name: (value, minimum, [how])
    default = f"unet {r['default_setting']}"
    train = r.get("train_images_per_s", {})
    if default in train:
        rate = train[default]["lightning"]
        out["lightning_over_plain"] = (rate / train[default]["plain"], 0.95)
        out["default_over_unet_seed_fp32"] = (rate / train["unet_seed fp32 NCHW"]["lightning"], 20)
        peak = r["matmul_gflops"]["bf16" if "bf16" in default else "fp32"]
        achieved = rate * r["train_gflop_per_image"]["unet"]
        out["train_gflops_share_of_matmul"] = (achieved / peak, 0.5)
        if "data_images_per_s" in r:
            out["data_all_over_train_step"] = (r["data_images_per_s"]["all"] / rate, 5)
    if "inference" in r:
        best = max(r["inference"].items(), key=lambda kv: kv[1]["images_per_s_b16"])
        out["inference_best_images_per_s_b16"] = (best[1]["images_per_s_b16"], 80, best[0])
    ways = r.get("segment", {})
    fp32 = ways.get(UNFOLDED, {}).get("slices_per_s")
    int8 = next((v["slices_per_s"] for k, v in ways.items() if k.startswith("ONNX Runtime int8")), None)
    if fp32 and int8:
        out["segment_int8_default_over_fp32"] = (int8 / fp32, 2, "the default on a CPU without bf16, before and now")
    return {key: {"value": round(v[0], 3), "target": f">= {v[1]}", "met": v[0] >= v[1],
                  **({"how": v[2]} if len(v) > 2 else {})}
            for key, v in out.items()}


def markdown(r: dict, command: str) -> str:
    m = r["machine"]
    extras = "".join(name for key, name in (("cpu_bf16", ", bf16"), ("cpu_int8_vnni", ", VNNI")) if m.get(key))
    lines = ["# Benchmarks\n", f"Command: `{command}`  ", f"Machine: {m['cpu']}, {m['cores']} cores "
             f"({m['cpu_capability']}{extras}), torch {m['torch']}, GPU: {m['gpu'] or 'none'}  ",
             f"Batch {r['args']['batch_size']}, {r['args']['image_size']}x{r['args']['image_size']}; "
             f"default training setting: {r['default_setting']}\n",
             f"Matmul {r['args']['matmul_n']}²: fp32 {r['matmul_gflops']['fp32']:.0f} GFLOP/s, "
             f"bf16 {r['matmul_gflops']['bf16']:.0f} GFLOP/s\n"]
    if "train_images_per_s" in r:
        lines += ["## Training (images/s)\n", "| network, setting | Lightning | plain PyTorch | Lightning/plain |",
                  "|---|---|---|---|"]
        for name, v in r["train_images_per_s"].items():
            plain, ratio = (f"{v['plain']:.2f}", f"{v['lightning'] / v['plain']:.2f}") if "plain" in v else ("–", "–")
            lines.append(f"| {name} | {v['lightning']:.2f} | {plain} | {ratio} |")
        g = r["train_gflop_per_image"]
        flops = ", ".join(f"{name} {g[name]:.2f}" for name in TRAIN_MODELS)
        lines += ["", f"Training GFLOP per image: {flops}. "
                  f"Peak {'GPU' if m['gpu'] else 'resident'} memory of the default model's training at the "
                  f"default batch size ({r['train_peak_memory_batch_size']}, {r['default_setting']}): "
                  f"{r['train_peak_memory_mb']:.0f} MB\n"]
    if "data_images_per_s" in r:
        lines += ["## Data pipeline (images/s, no model)\n", "| augment | images/s |", "|---|---|"]
        lines += [f"| {a} | {v:.0f} |" for a, v in r["data_images_per_s"].items()] + [""]
    if "inference" in r:
        lines += ["## Inference of the default model\n", "| how | images/s (batch 16) | ms/slice (batch 1) |",
                  "|---|---|---|"]
        lines += [f"| {k} | {v['images_per_s_b16']:.1f} | {v['ms_per_slice_b1']:.1f} |"
                  for k, v in r["inference"].items()]
        lines.append("")
    if "segment" in r:
        lines += ["## The shipped model through evaluate/predict's path (its TTA and members; slices/s)\n",
                  "| way | slices/s | runs as | file |", "|---|---|---|---|"]
        lines += [f"| {k} | {v['slices_per_s']:.2f} | {v['runs']} | {v['model']} |" for k, v in r["segment"].items()]
        lines.append("")
    if "volume" in r:
        lines += ["## A 512 x 512 CT volume through predict's path (read, net, mask written; slices/s)\n",
                  "| TTA | slices/s | runs as |", "|---|---|---|"]
        lines += [f"| {k} | {v['slices_per_s']:.2f} | {v['runs']} |" for k, v in r["volume"].items()]
        lines.append("")
    lines += ["## Targets\n", "| figure | value | target | met |", "|---|---|---|---|"]
    lines += [f"| {k} | {v['value']}{' (' + v['how'] + ')' if 'how' in v else ''} | {v['target']} | "
              f"{'yes' if v['met'] else 'no'} |" for k, v in r["summary"].items()]
    return "\n".join(lines) + "\n"


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="bench")
@exit_on_user_error
def main(cfg: DictConfig) -> dict:
    return run_bench(cfg)


def run_bench(cfg: DictConfig) -> dict:
    """The measurements of cfg (conf/bench.yaml), written to cfg.out; returns them."""
    args = argparse.Namespace(**{k: v for k, v in OmegaConf.to_container(cfg).items() if k != "task_name"})
    if isinstance(args.parts, list):  # parts=[train,infer]
        args.parts = ",".join(args.parts)
    if args.device not in ("cpu", "cuda"):
        raise UserError(f"device={args.device} is not one of cpu, cuda")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("device=cuda, but torch sees no GPU here: run with device=cpu")
    global DEVICE
    DEVICE = args.device
    args.compile = not args.quick if args.compile is None else args.compile
    if args.quick:
        args.image_size, args.steps = min(args.image_size, 128), min(args.steps, 3)
    timed = TRAIN_MODELS if "train" in args.parts.split(",") else ("unet",)  # infer and data use the default only
    step = 2 ** max(config(f"model={m}").model.depth for m in timed)
    if args.image_size % step:
        raise UserError(f"image_size={args.image_size} does not divide by {step} (2**depth of the "
                         f"deepest timed model): use image_size={max(step, args.image_size // step * step)}")
    args.warmup, args.seed_steps = (1, 1) if args.quick else (2, 3)
    args.data_batches, args.infer_reps, args.matmul_n = (5, 3, 1024) if args.quick else (20, 10, 2048)
    args.segment_slices, args.volume_slices = (2, 2) if args.quick else (24, 32)
    if DEVICE == "cuda":  # cuDNN autotunes in the first steps; a GPU needs big products to reach its peak
        torch.backends.cudnn.benchmark = True
        args.warmup, args.infer_reps, args.matmul_n = args.warmup + 3, args.infer_reps * 5, 8192
    results = measure(args)
    suffix = ("-gpu" if DEVICE == "cuda" else "") + ("-quick" if args.quick else "")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "tumorseg bench " + " ".join(a for a in sys.argv[1:] if not a.startswith("hydra."))
    (out / f"benchmarks{suffix}.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results, command.strip())
    (out / f"BENCHMARKS{suffix}.md").write_text(table)
    print(table)
    return results


if __name__ == "__main__":
    main()
