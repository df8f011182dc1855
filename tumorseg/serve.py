"""Serve a browser page of `tumorseg export format=web` on 127.0.0.1 (cross-origin isolated; nothing leaves it).

    tumorseg serve DIR [port=8000]      (dir=DIR is the same); Ctrl+C ends it

The page segments a dropped scan inside the browser: the scan is never sent anywhere, this server only hands out the
page's own files (docs/web.md).
"""

import functools
import re
import sys

import hydra
from omegaconf import DictConfig

from tumorseg import CONF_DIR
from tumorseg.errors import UserError, exit_on_user_error, exit_with
from tumorseg.web.server import page_server

# Hydra's own options that take the next argument as their value (never a page folder).
VALUED_FLAGS = {"--cfg", "-c", "--package", "-p", "--info", "-i", "--config-path", "-cp", "--config-name", "-cn",
                "--config-dir", "-cd", "--experimental-rerun"}


def is_folder(argv: list[str], i: int) -> bool:
    """Whether argv[i] is a page folder rather than an override or a flag's value (~key deletes a key in Hydra)."""
    arg = argv[i]
    hydra_delete = arg.startswith("~") and "/" not in arg
    return "=" not in arg and not arg.startswith("-") and not hydra_delete and argv[i - 1] not in VALUED_FLAGS


def quoted(folder: str) -> str:
    """folder as a quoted Hydra value, taken as it is: spaces, brackets, commas, quotes, `${` and backslashes."""
    text = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", folder)
    text = re.sub(r"(\\*)\$\{", lambda m: m.group(1) * 2 + "\\${", text)
    return "'" + re.sub(r"(\\+)$", lambda m: m.group(1) * 2, text) + "'"


def folder_argument(fn):
    """Let `tumorseg serve DIR` stand for `tumorseg serve dir=DIR` (Hydra takes only key=value); one folder."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        argv = sys.argv
        folders = [i for i in range(1, len(argv)) if is_folder(argv, i)]
        if len(folders) > 1:
            exit_with(f"one page folder at a time, not {len(folders)} ({', '.join(argv[i] for i in folders[:3])}): "
                      f"tumorseg serve DIR")
        for i in folders:
            argv[i] = f"dir={quoted(argv[i])}"
        return fn(*args, **kwargs)

    return wrapper


@folder_argument
@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="serve")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    if not cfg.dir:
        raise UserError("no page folder given: tumorseg serve DIR, DIR written by tumorseg export format=web "
                        "output=DIR")
    if cfg.port is None:
        raise UserError("port is not set: port=8000, or port=0 for any free port")
    server = page_server(cfg.dir, cfg.port, log=None if cfg.quiet else lambda line: print(line, flush=True))
    host, port = server.server_address[:2]
    print(f"serving {cfg.dir} at http://{host}:{port}/ (only this machine can open it; Ctrl+C ends it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
