"""User-facing ends of a command: a mistake is one clear line and exit status 2, Ctrl+C and SIGTERM one line and
130 and 143; never a traceback."""

import functools
import logging
import signal
import sys
import threading
import traceback
from typing import NoReturn

from hydra.errors import ConfigCompositionException, InstantiationException, OverrideParseException, SearchPathException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    InterpolationResolutionError,
    MissingMandatoryValue,
    OmegaConfBaseException,
)

log = logging.getLogger("tumorseg")

EXIT_USER_ERROR = 2
# The shell's statuses of a process ended by Ctrl+C (SIGINT) and by SIGTERM: 128 + the signal's number.
EXIT_SIGINT, EXIT_SIGTERM = 128 + signal.SIGINT, 128 + signal.SIGTERM


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
    """The UserError that a constructor raised while Hydra instantiated it (Hydra wraps it, maybe more than once);
    a key the constructor does not take (a `+group.key=` override) is one too."""
    while isinstance(err, InstantiationException):
        err = err.__cause__
    if isinstance(err, TypeError) and "unexpected keyword argument" in str(err):
        key = str(err).rsplit("argument", 1)[-1].strip(" '\"")
        return UserError(f"{key} is not an option here ({err}): remove the +...{key}= override (--cfg job lists "
                         f"the options)")
    return err if isinstance(err, UserError) else None


# A setting that is missing, left `???`, or names a value that does not exist: the user's config, read by the command
SETTING_ERRORS = (ConfigAttributeError, ConfigKeyError, InterpolationResolutionError, MissingMandatoryValue)


def setting_error(err: OmegaConfBaseException, key: str | None = None) -> UserError:
    """One line for an OmegaConf error met while a command reads its composed config (at key, when known)."""
    key = key or getattr(err, "full_key", None) or "a setting"
    first = str(err).splitlines()[0] if str(err) else type(err).__name__
    fix = ("refer only to settings this command has, or give a plain value"
           if isinstance(err, InterpolationResolutionError) else f"give it a value ({key}=...) and do not remove it")
    return UserError(f"{key}: {first}: {fix} (--cfg job shows the config)")


def resolved(cfg: DictConfig) -> None:
    """Resolve the settings the command line gave (Hydra's task overrides), before the command runs: an
    interpolation that names no value, or a value left `???`, is a UserError naming the key (not a traceback where
    the command first reads it). The shipped configs' own interpolations resolve where a command reads them."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    for override in OmegaConf.to_container(HydraConfig.get().overrides.task, resolve=False):  # as typed
        key = override.split("=", 1)[0].lstrip("+~")
        try:
            node = OmegaConf.select(cfg, key, throw_on_missing=True)
            if OmegaConf.is_config(node):
                OmegaConf.to_container(node, resolve=True, throw_on_missing=True)
        except SETTING_ERRORS as err:
            raise setting_error(err, key) from None


class Terminated(BaseException):
    """SIGTERM, raised where the command is (a BaseException, as KeyboardInterrupt: the `finally` and
    `except BaseException` cleanups of the writers run and remove their temporary files)."""


# While a trainer stage runs (tumorseg.training.guards.InterruptCheckpoint sets TERMINATION_DEFERRED), the first
# SIGTERM only asks: Lightning's own SIGTERM handler, which runs beside this one, and that callback stop the stage at
# the next batch boundary. Raised wherever the main thread is, Terminated could land inside TensorBoard's event
# queue with its lock held, and Lightning's shutdown, which flushes that queue, then waited forever. A second SIGTERM
# raises at once.
TERMINATION_DEFERRED, TERMINATION_ASKED = threading.Event(), threading.Event()


def raise_terminated(signum, frame) -> None:
    if TERMINATION_DEFERRED.is_set() and not TERMINATION_ASKED.is_set():
        TERMINATION_ASKED.set()
        return
    raise Terminated


def interrupted(command: str, why: str, status: int) -> NoReturn:
    """The end of a command stopped by a signal: one line on stderr, the shell's status of that signal."""
    print(f"interrupted: {command} stopped ({why}); no partial file left", file=sys.stderr, flush=True)
    sys.exit(status)


def command_name(fn) -> str:
    """The command a main function belongs to: predict for tumorseg.predict, also run as `python -m` (__main__)."""
    module = fn.__module__
    if module == "__main__":
        module = getattr(getattr(sys.modules["__main__"], "__spec__", None), "name", None) or module
    return module.rsplit(".", 1)[-1]


def exit_on_user_error(fn):
    """Run a command's main function on its composed config, checked first (config_checks.check_config); turn a
    UserError (also one raised within Hydra's instantiate) into one line on stderr and exit 2, as Hydra's config
    errors are (report_config_errors); Ctrl+C and SIGTERM into one line and exit 130 and 143."""
    report_config_errors()
    command = command_name(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from tumorseg.settings.rules import check_config  # not at the top: settings.rules imports this module

        main_thread = threading.current_thread() is threading.main_thread()  # only there can a handler be set
        before = signal.signal(signal.SIGTERM, raise_terminated) if main_thread else None
        try:
            for cfg in args[:1]:
                if isinstance(cfg, DictConfig):
                    resolved(cfg)
                    check_config(cfg)
            return fn(*args, **kwargs)
        except UserError as err:
            exit_with(err)
        except SETTING_ERRORS as err:  # a required key removed with ~key
            exit_with(setting_error(err))
        except InstantiationException as err:
            cause = user_error_in(err)
            if cause is None:
                raise
            exit_with(cause)
        except KeyboardInterrupt:
            interrupted(command, "Ctrl+C", EXIT_SIGINT)
        except Terminated:
            interrupted(command, "SIGTERM", EXIT_SIGTERM)
        finally:
            if main_thread:  # None: a handler set outside Python, which cannot be set back
                signal.signal(signal.SIGTERM, signal.SIG_DFL if before is None else before)

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
    except ValueError as err:
        if not str(err).startswith("Config group override"):  # Hydra's own check of a group=value override's type
            raise
        exit_with(f"{err}: a config group (model=, loss=, approach=, ...) takes an option's name, e.g. loss=dice "
                  f"(--help lists the options)")
    except TypeError:
        # Hydra's defaults list fails on a group given a list holding a number (data=[1,2]); other TypeErrors are bugs
        if "hydra/_internal/defaults_list.py" not in traceback.format_exc():
            raise
        lists = " ".join(a for a in sys.argv[1:] if "=[" in a) or "a group=[...] override"
        exit_with(f"{lists}: a config group (model=, loss=, data=, ...) takes option names, not numbers, e.g. "
                  f"data=lung (--help lists the options)")


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
