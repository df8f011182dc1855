"""The nets alone, as `tumorseg bench`'s inference part times the default one (which it does not do for other model
options): eager PyTorch, batch 16 at 256 x 256, fp32 channels_last and bf16 autocast, images/s; on the CPU's
threads (torch's default). Prints a Markdown table:
    .venv/bin/python experiments/lung/deeplabv3/net_speed.py
"""

import torch
from hydra.utils import instantiate

from tumorseg.benchmark.configs import train_config
from tumorseg.benchmark.inference import eager
from tumorseg.benchmark.timing import calls_per_s

BATCH, SIZE, REPS = 16, 256, 5


def main() -> None:
    x = torch.randn(BATCH, 1, SIZE, SIZE)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH} at {SIZE} x {SIZE}")
    print("| net | parameters | fp32 images/s | bf16 images/s |")
    print("|---|---|---|---|")
    for model in ("unet", "deeplabv3"):
        torch.manual_seed(0)
        net = instantiate(train_config("cpu", f"model={model}").model).eval().to(memory_format=torch.channels_last)
        rates = [BATCH * calls_per_s(lambda run=eager(net, "cpu", True, bf16): run(x), REPS, "cpu")
                 for bf16 in (False, True)]
        print(f"| {model} | {sum(p.numel() for p in net.parameters()):,} | {rates[0]:.1f} | {rates[1]:.1f} |")


if __name__ == "__main__":
    main()
