"""Serving a page folder on 127.0.0.1: the right types for .wasm and .mjs, and the headers that make the page
cross-origin isolated (COOP / COEP: other sites' windows and resources kept apart) and allow it no connection
beyond its own origin (Content-Security-Policy, as its meta tag says too)."""

import functools
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tumorseg.errors import UserError
from tumorseg.web.page_folder import is_page_folder

# The page's policy, the same as its meta tag (page/index.html): scripts, workers, WASM and fetches from its own
# origin only; blob: for the workers onnxruntime-web's threads start and the files the page hands back to the user.
CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self' blob:; connect-src 'self' blob: "
       "data:; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; "
       "form-action 'none'")
HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
           "Cross-Origin-Resource-Policy": "same-origin", "Content-Security-Policy": CSP,
           "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
TYPES = {".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript", ".json": "application/json",
         ".onnx": "application/octet-stream", ".gz": "application/gzip", ".nii": "application/octet-stream",
         ".nrrd": "application/octet-stream", ".mha": "application/octet-stream", ".dcm": "application/dicom"}


class PageHandler(SimpleHTTPRequestHandler):
    """Files of one folder with the page's headers; a request line is logged only through log (quiet: none)."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **TYPES}

    def __init__(self, *args, log=None, **kwargs):
        self.log = log
        super().__init__(*args, **kwargs)

    def end_headers(self):
        for name, value in HEADERS.items():
            self.send_header(name, value)
        super().end_headers()

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        if self.log is not None:
            self.log(format % args)


class PageServer(ThreadingHTTPServer):
    """A thread per request; a browser that drops a connection mid-file (it navigated away) is no error."""

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def page_server(folder: Path, port: int = 8000, log=None) -> PageServer:
    """A server of folder on 127.0.0.1:port (0: any free port); refused in one line when folder is no page folder
    or the port is taken."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UserError(f"dir={folder} is not a folder: give the folder `tumorseg export format=web output=DIR` wrote")
    if not is_page_folder(folder):
        raise UserError(f"dir={folder} holds no page (index.html, model.json, model.onnx): write one with "
                        f"tumorseg export format=web output={folder}")
    handler = functools.partial(PageHandler, directory=str(folder.resolve()), log=log)
    try:
        return PageServer(("127.0.0.1", port), handler)
    except OSError as err:
        raise UserError(f"port={port} cannot be used on 127.0.0.1 ({err.strerror}): choose another, e.g. "
                        f"port={port + 1 if port else 8000}") from None
