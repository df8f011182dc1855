"""User-facing errors: one clear line and exit status 2, never a traceback."""

import functools
import logging
import sys

log = logging.getLogger("tumorseg")

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A mistake the user can fix (a path, a setting, a file); the message says how."""


def exit_on_user_error(fn):
    """Run a command's main function; turn a UserError into one line on stderr and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(EXIT_USER_ERROR)

    return wrapper
