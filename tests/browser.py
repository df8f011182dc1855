"""Headless Chromium driven over the DevTools protocol (a websocket; no chromedriver): open a page, evaluate
JavaScript in it, give it files as a user does (a file picker, a drop), take what it downloads, take a screenshot,
and log every request it makes."""

import base64
import itertools
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import websocket

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--remote-debugging-port=0",
         "--window-size=1400,900"]


class Browser:
    """One Chromium process with one page; requests holds every URL the page asked for, console its messages."""

    def __init__(self, profile: Path):
        self.process = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        for _ in range(300):
            if port_file.is_file() and port_file.read_text().strip():
                break
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json"))
        page = next(t for t in targets if t["type"] == "page")
        self.socket = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=300, suppress_origin=True)
        self.ids = itertools.count(1)
        self.requests: list[str] = []
        self.console: list[str] = []
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        # the page's workers (the model's, dcm2niix's, onnxruntime-web's threads) fetch too: their requests are logged
        self.call("Target.setAutoAttach", autoAttach=True, waitForDebuggerOnStart=True, flatten=True)

    def call(self, method: str, **params) -> dict:
        """Send one command and wait for its answer (events met on the way are recorded)."""
        ident = next(self.ids)
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.event(message)

    def event(self, message: dict) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Target.attachedToTarget":
            # a worker waits to start until its requests are logged (else it may fetch before Network.enable),
            # and the workers it starts are attached in turn
            for command, args in (("Network.enable", {}), ("Runtime.enable", {}),
                                  ("Target.setAutoAttach", {"autoAttach": True, "waitForDebuggerOnStart": True,
                                                            "flatten": True}),
                                  ("Runtime.runIfWaitingForDebugger", {})):
                self.socket.send(json.dumps({"id": next(self.ids), "method": command, "params": args,
                                             "sessionId": params["sessionId"]}))
        elif method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Runtime.consoleAPICalled":
            self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            self.console.append(str(params["exceptionDetails"].get("exception", {}).get("description")))
        elif method == "Log.entryAdded":
            self.console.append(params["entry"]["text"])

    def open(self, url: str) -> None:
        self.requests.clear()
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (a promise awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 120) -> object:
        """Poll an expression until it is truthy; its value (AssertionError with the page's state on timeout)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.2)
        state = self.evaluate("JSON.stringify(window.tumorseg || null)")
        raise AssertionError(f"{expression} not true after {timeout} s; page state {state}; "
                             f"console {self.console[-5:]}")

    def choose_files(self, selector: str, paths: list[Path]) -> None:
        """Choose files in the page's <input type=file> at selector, as the file dialog does (a folder for a folder
        picker: the page gets the files below it)."""
        root = self.call("DOM.getDocument")["root"]["nodeId"]
        node = self.call("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        self.call("DOM.setFileInputFiles", files=[str(p) for p in paths], nodeId=node)

    def drop_files(self, selector: str, paths: list[Path]) -> None:
        """Drag files (or a folder) from the desktop and drop them on the middle of the element at selector."""
        box = self.evaluate(f"(r => [r.x + r.width / 2, r.y + r.height / 2])"
                            f"(document.querySelector({json.dumps(selector)}).getBoundingClientRect())")
        data = {"items": [], "files": [str(p) for p in paths], "dragOperationsMask": 1}  # 1: copy
        for kind in ("dragEnter", "dragOver", "drop"):
            self.call("Input.dispatchDragEvent", type=kind, x=box[0], y=box[1], data=data)

    def download(self, click: str, folder: Path, timeout: float = 60) -> Path:
        """The file the page saves when the JavaScript click runs (a button's click()), once whole, in folder."""
        self.call("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(folder))
        self.evaluate(click)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            # Chromium writes to a .crdownload name and renames the file when it is whole
            done = [p for p in folder.iterdir() if p.suffix != ".crdownload"]
            if done and not any(folder.glob("*.crdownload")):
                (path,) = done
                return path
            time.sleep(0.1)
        raise AssertionError(f"no download in {folder} after {timeout} s: {sorted(folder.iterdir())}")

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.socket.close()
        finally:
            self.process.terminate()
            self.process.wait(timeout=30)
