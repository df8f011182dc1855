"""Compare two methods' results by fold and subject (paired differences, bootstrap interval, Wilcoxon p), and
decide between them by a rule written before the results.

    tumorseg compare a=CONTROL b=CANDIDATE [rule=RULE.yaml] [output=DIR]
    tumorseg compare a='eval/control-fold*.json' b='eval/candidate-fold*.json' rule=rule.yaml
"""

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from tumorseg import CONF_DIR
from tumorseg.errors import UserError, exit_on_user_error
from tumorseg.files.output_files import check_apart
from tumorseg.scoring.comparison import Comparison, compare
from tumorseg.scoring.decision_rule import Decision, decide, read_rule
from tumorseg.writers.comparison_report import markdown, write_comparison


def side(cfg: DictConfig, key: str) -> list[str]:
    """A side's paths or glob patterns as a list (one given alone, or a list)."""
    value = cfg.get(key)
    if value is None:
        raise UserError(f"{key} is not set: {key}=<run, sweep or evaluate folder>, or {key}=[FILE,FILE]")
    return [str(v) for v in value] if OmegaConf.is_list(value) else [str(value)]


def run(cfg: DictConfig) -> tuple[Comparison, Decision | None, list[Path]]:
    """Read and pair a and b, apply the rule, write compare.md and compare.json into output."""
    a, b = side(cfg, "a"), side(cfg, "b")
    rule = read_rule(Path(cfg.rule)) if cfg.get("rule") else None
    comparison = compare(a, b, int(cfg.seed))
    decision = decide(rule, comparison) if rule is not None else None
    out = Path(cfg.output).expanduser()
    check_apart(out, [f for p in comparison.folds for r in (p.a, p.b) for f in r.files])
    return comparison, decision, write_comparison(out, comparison, decision, bool(cfg.overwrite))


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="compare")
@exit_on_user_error
def main(cfg: DictConfig) -> bool | None:
    comparison, decision, written = run(cfg)
    print(markdown(comparison, decision), end="")
    print(f"written: {', '.join(map(str, written))}")
    if decision is not None:
        print("KEPT" if decision.kept else "NOT KEPT", flush=True)
    return None if decision is None else decision.kept


if __name__ == "__main__":
    main()
