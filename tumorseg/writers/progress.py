"""A progress bar over slices for long commands, shown only to a person watching a terminal."""

import os
import sys
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def shown() -> bool:
    """A terminal is watching, and this is not a CI log (where a bar is noise)."""
    return sys.stderr.isatty() and not os.environ.get("CI")


@contextmanager
def progress(total: int, what: str):
    """Yields advance(n): a transient bar of `total` items on stderr, or a no-op where it is not shown."""
    if not shown():
        yield lambda n=1: None
        return
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=Console(stderr=True), transient=True)
    with bar:
        task = bar.add_task(what, total=total)
        yield lambda n=1: bar.advance(task, n)
