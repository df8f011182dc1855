"""The `tumorseg` console command: `tumorseg <command> ...` is `python -m tumorseg.<command> ...`.

    tumorseg --help                 the commands, one line each
    tumorseg train approach=split   (any command's own options follow it; `tumorseg <command> --help` lists them)
"""

import ast
import importlib
import importlib.util
import sys
from pathlib import Path

# The command name and the module that holds its main(), in the order of a project's life.
COMMANDS = {
    "check": "tumorseg.check",
    "convert": "tumorseg.convert",
    "train": "tumorseg.train",
    "report": "tumorseg.report",
    "evaluate": "tumorseg.evaluate",
    "compare": "tumorseg.compare",
    "predict": "tumorseg.predict",
    "ship": "tumorseg.ship",
    "export": "tumorseg.export",
    "serve": "tumorseg.serve",
    "fetch": "tumorseg.fetch",
    "bench": "tumorseg.bench",
}


def summary(module: str) -> str:
    """The first line of a module's docstring, read from its source (importing every command would take seconds)."""
    spec = importlib.util.find_spec(module)
    doc = ast.get_docstring(ast.parse(Path(spec.origin).read_text())) if spec and spec.origin else None
    return (doc or "").splitlines()[0] if doc else ""


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: tumorseg <command> [key=value ...]   (the same as python -m tumorseg.<command>)", "", "commands:"]
    lines += [f"  {name:<{width}}  {summary(module)}" for name, module in COMMANDS.items()]
    lines += ["", "tumorseg <command> --help shows a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, *rest = argv
    if name not in COMMANDS:
        print(f"error: {name!r} is not a tumorseg command: one of {', '.join(COMMANDS)} (tumorseg --help)",
              file=sys.stderr)
        return 2
    sys.argv = [f"tumorseg {name}", *rest]
    try:
        # a command ends a failure itself (also Ctrl+C and SIGTERM), with sys.exit and its status; its return
        # value is a result
        importlib.import_module(COMMANDS[name]).main()
    except KeyboardInterrupt:  # while the command's imports load, before its main can speak
        from tumorseg.errors import EXIT_SIGINT, interrupted

        interrupted(name, "Ctrl+C", EXIT_SIGINT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
