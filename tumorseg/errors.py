"""User-facing errors: one clear line and exit status 2, never a traceback."""

import functools
import logging
import sys
from typing import NoReturn

from hydra.errors import ConfigCompositionException, InstantiationException, OverrideParseException, SearchPathException
from omegaconf.errors import OmegaConfBaseException

log = logging.getLogger("tumorseg")

EXIT_USER_ERROR = 2


class UserError(ValueError):
    """A mistake the user can fix (a path, a setting, a file); the message names it and says how.

    The library raises it (a ValueError, so callers of the Python API catch it as one); only a command's main,
    through exit_on_user_error, turns it into one `error:` line and exit status 2.
    """


def exit_with(message: object) -> NoReturn:
    """The end of a user's mistake: one line on stderr, exit status 2."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_USER_ERROR)


def user_error_in(err: InstantiationException) -> UserError | None:
    """The UserError that a constructor raised while Hydra instantiated it (Hydra wraps it, maybe more than once)."""
    while isinstance(err, InstantiationException):
        err = err.__cause__
    return err if isinstance(err, UserError) else None


def exit_on_user_error(fn):
    """Run a command's main function; turn a UserError (also one raised within Hydra's instantiate) into one line on
    stderr and exit 2, as Hydra's config errors are (report_config_errors)."""
    report_config_errors()

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            exit_with(err)
        except InstantiationException as err:
            cause = user_error_in(err)
            if cause is None:
                raise
            exit_with(cause)

    return wrapper


# Overrides Hydra cannot parse or compose (a key not in the config, a group option that does not exist): the
# user's mistakes, which Hydra reports in several lines with exit status 1.
CONFIG_ERRORS = (OverrideParseException, ConfigCompositionException, SearchPathException)


def one_line(err: Exception) -> str:
    """Hydra's message and its OmegaConf cause's first line as one line; an indented list joined after its header."""
    lines = str(err).splitlines()
    if isinstance(err.__cause__, OmegaConfBaseException):
        lines += str(err.__cause__).splitlines()[:1]
    parts: list[str] = []
    for line in lines:
        if line[:1].isspace() and parts:
            parts[-1] += (" " if parts[-1].endswith(":") else ", ") + line.strip()
        elif line.strip():
            parts.append(line.strip().rstrip("."))
    return "; ".join(p for p in parts if not p.startswith("Config search path"))


def config_errors_in_one_line(func):
    """Run one of Hydra's steps (compose, run, multirun, --cfg); its config errors end as one line, exit 2."""
    try:
        return func()
    except CONFIG_ERRORS as err:
        exit_with(f"{one_line(err)} (--help lists the options)")


def report_config_errors() -> None:
    """Run every step Hydra reports on (run_and_report) through config_errors_in_one_line."""
    # Hydra composes the config before a command's main runs: only its own reporting step sees these errors.
    from hydra._internal import utils

    hydra_report = getattr(utils, "run_and_report", None)
    if hydra_report is None or getattr(hydra_report, "one_line", False):  # another Hydra, or routed already
        return

    @functools.wraps(hydra_report)
    def routed(func):
        return hydra_report(functools.partial(config_errors_in_one_line, func))

    routed.one_line = True
    utils.run_and_report = routed
