"""The headline ratios of a run and the targets they are held to (docs/performance.md)."""

from tumorseg.benchmark.segment import AUTO, FP32, INT8


def targets(r: dict) -> dict[str, tuple]:
    """name: (value, minimum[, how]) of each figure the run's parts give."""
    out: dict[str, tuple] = {}
    default = f"unet {r['default_setting']}"
    train = r.get("train_images_per_s", {})
    if default in train:
        rate = train[default]["lightning"]
        out["lightning_over_plain"] = (rate / train[default]["plain"], 0.95)
        out["default_over_unet_seed_fp32"] = (rate / train["unet_seed fp32 NCHW"]["lightning"], 20)
        peak = r["matmul_gflops"]["bf16" if "bf16" in default else "fp32"]
        out["train_gflops_share_of_matmul"] = (rate * r["train_gflop_per_image"]["unet"] / peak, 0.5)
        if "data_images_per_s" in r:
            out["data_all_over_train_step"] = (r["data_images_per_s"]["all"] / rate, 5)
    if r.get("inference"):
        best = max(r["inference"].items(), key=lambda kv: kv[1]["images_per_s_b16"])
        out["inference_best_images_per_s_b16"] = (best[1]["images_per_s_b16"], 80, best[0])
    ways = r.get("segment", {})
    fp32 = next((v["slices_per_s"] for k, v in ways.items() if k.startswith(FP32)), None)
    int8 = next((v["slices_per_s"] for k, v in ways.items() if k.startswith(INT8)), None)
    if fp32 and int8:
        out["segment_int8_default_over_fp32"] = (int8 / fp32, 2, "the int8 export over PyTorch fp32")
    auto = next((v for k, v in ways.items() if k.startswith(AUTO)), None)
    if auto and "over_fastest" in auto:
        out["segment_auto_over_fastest"] = (auto["over_fastest"], 0.95, f"runtime=auto runs {auto['runs']}")
    return out


def summarize(r: dict) -> dict:
    """name: {value, target, met[, how]}."""
    return {key: {"value": round(v[0], 3), "target": f">= {v[1]}", "met": v[0] >= v[1],
                  **({"how": v[2]} if len(v) > 2 else {})}
            for key, v in targets(r).items()}
