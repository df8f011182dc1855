"""Benchmark on this machine: training (Lightning vs plain PyTorch), data pipeline, inference, FLOP
efficiency, memory. Prints a table; writes BENCHMARKS.md and benchmarks.json into out= (outputs/bench).

    tumorseg bench                          # full run
    tumorseg bench quick=true               # about a minute: small images, few steps
    tumorseg bench parts=[train,infer] batch_size=8 image_size=256
    tumorseg bench device=cuda batch_size=32   # writes BENCHMARKS-gpu.md
    tumorseg bench out=experiments          # the recorded figures of the project's machine
"""

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from tumorseg import CONF_DIR
from tumorseg.benchmark.measure import measure
from tumorseg.benchmark.report import as_json, markdown, report_paths
from tumorseg.benchmark.settings import settings_from
from tumorseg.errors import exit_on_user_error
from tumorseg.files.output_files import OutputFiles


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="bench")
@exit_on_user_error
def main(cfg: DictConfig) -> dict:
    return run_bench(cfg)


def run_bench(cfg: DictConfig) -> dict:
    """The measurements of cfg (conf/bench.yaml), written to cfg.out; returns them."""
    settings = settings_from(OmegaConf.to_container(cfg))
    json_path, md_path = report_paths(settings)
    files = OutputFiles(settings.out, overwrite=True, option="out")  # each run replaces the last one's report
    files.claim([json_path, md_path])  # before the minutes of measuring: a link or a folder there is refused now
    results = measure(settings)
    command = "tumorseg bench " + " ".join(a for a in sys.argv[1:] if not a.startswith("hydra."))
    table = markdown(results, command.strip())
    files.text(json_path, as_json(results))
    files.text(md_path, table)
    print(table)
    return results


if __name__ == "__main__":
    main()
