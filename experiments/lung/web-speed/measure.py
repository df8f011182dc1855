"""Slices per second of the browser page (headless Chromium, onnxruntime-web WASM, 1 and 2 workers of one thread)
beside the CLI's path with the same int8 file (ONNX Runtime, tta=false, 2 threads) on one val subject's PNG slices,
rounds interleaved.

    .venv/bin/python experiments/lung/web-speed/measure.py ../shared/data/lung-ct-slices/val/images/58 [rounds]

Prints a Markdown table, each round's figures and the page/CLI ratios, the CPU's instruction sets and the load
average before and after (the figures are only comparable on an idle machine). Uses the test suite's Chromium driver
(tests/browser.py) and the shipped model's page (tumorseg export format=web).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from omegaconf import OmegaConf  # noqa: E402

from tests.browser import Browser  # noqa: E402
from tumorseg.data.decode import read_gray  # noqa: E402
from tumorseg.inference.hardware import cpu_flags, cpu_name  # noqa: E402
from tumorseg.inference.model_file import REFERENCE_MODEL  # noqa: E402
from tumorseg.inference.segment import segmenter_for  # noqa: E402
from tumorseg.web.server import page_server  # noqa: E402

FINISHED = "window.tumorseg && ['done', 'error'].includes(window.tumorseg.status)"


def page_rate(browser: Browser, address: str, url: str, threads: int) -> float:
    """The page's own slices/s for the slices at url with `threads` model workers of one WASM thread each (its model
    loaded first)."""
    browser.open(f"{address}?url={url}&threads={threads}")
    browser.wait_for(FINISHED, timeout=900)
    state = browser.evaluate("JSON.parse(JSON.stringify(window.tumorseg))")
    if state["status"] != "done" or state["threads"] != threads:
        raise SystemExit(f"page: {state}")
    return float(state["slicesPerSecond"])


def cli_rate(slices: list[Path]) -> float:
    """Slices/s of the CLI's segmentation path on the same slices: the int8 export, no TTA."""
    segmenter = segmenter_for(OmegaConf.create({"ckpt_path": str(REFERENCE_MODEL.with_name("lung_unet.int8.onnx")),
                                                "tta": False, "device": "cpu", "batch_size": 8}))
    grays = [read_gray(p) for p in slices]
    segmenter.subject(grays[:8], slices[:8])  # warm-up
    start = time.perf_counter()
    segmenter.subject(grays, slices)
    return len(slices) / (time.perf_counter() - start)


def main(subject: Path, rounds: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="web-speed-"))
    page = work / "page"
    subprocess.run([sys.executable, "-m", "tumorseg.export", "format=web", f"output={page}",
                    f"hydra.run.dir={work / 'log'}"], check=True, stdout=subprocess.DEVNULL)
    shutil.copytree(subject, page / "data" / subject.name)
    slices = sorted((page / "data" / subject.name).glob("*.png"))
    server = page_server(page, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"http://127.0.0.1:{server.server_address[1]}/"
    browser = Browser(work / "chromium")
    load = os.getloadavg()
    rows = {"CLI, ONNX Runtime int8, no TTA, 2 threads": [], "page, int8, 1 worker": [], "page, int8, 2 workers": []}
    try:
        for _ in range(rounds):
            rows["CLI, ONNX Runtime int8, no TTA, 2 threads"].append(cli_rate(slices))
            for threads in (1, 2):
                rows[f"page, int8, {threads} worker{'s' if threads > 1 else ''}"].append(
                    page_rate(browser, address, f"data/{subject.name}/", threads))
    finally:
        browser.close()
        server.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    sets = [f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile") if f in cpu_flags()]
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores, {' '.join(sets)}; load average before "
          f"{load[0]:.2f}, after {os.getloadavg()[0]:.2f}; {len(slices)} slices of {subject}")
    print("\n| way | " + " | ".join(f"round {i + 1} (slices/s)" for i in range(rounds)) + " | best |")
    print("|---|" + "---|" * (rounds + 1))
    for name, rates in rows.items():
        print(f"| {name} | " + " | ".join(f"{r:.2f}" for r in rates) + f" | {max(rates):.2f} |")
    cli = rows["CLI, ONNX Runtime int8, no TTA, 2 threads"]
    for threads in ("1 worker", "2 workers"):
        page_rates = rows[f"page, int8, {threads}"]
        ratios = [p / c for p, c in zip(page_rates, cli)]
        print(f"\npage ({threads}) / CLI per round: " + ", ".join(f"{r:.2f}" for r in ratios)
              + f"; best / best: {max(page_rates) / max(cli):.2f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 3)
