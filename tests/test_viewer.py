"""The viewer page (tumorseg.writers.viewer), rendered in headless Chromium and judged by its pixels."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

import tumorseg.writers.viewer as viewer
from tests.conftest import REPO
from tumorseg.files.output_files import OutputFiles
from tumorseg.writers.viewer import PageSubject, layer_paths, page_html, write_layers, write_page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def screenshot(page: Path, tmp: Path, address: str = "") -> np.ndarray:
    """The page (with a #fragment or ?query) rendered by headless Chromium at 1000 x 800, as RGB."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed, and CI needs the viewer checked")
        pytest.skip("chromium is not installed (apt install chromium): the viewer is not rendered")
    png = tmp / f"shot{len(list(tmp.glob('shot*.png')))}.png"
    profile = tmp / "chromium-profile"
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         "--hide-scrollbars", "--virtual-time-budget=3000", "--window-size=1000,800", f"--screenshot={png}",
         page.resolve().as_uri() + address], capture_output=True, text=True, timeout=120)
    assert png.is_file(), result.stderr[-2000:]
    return cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2RGB)


def red_pixels(rgb: np.ndarray) -> int:
    """Pixels tinted by the prediction layer: red well above green and blue (gray slices have r = g = b)."""
    r, g, b = (rgb[..., c].astype(int) for c in range(3))
    return int(((r - g > 60) & (r - b > 60)).sum())


def green_pixels(rgb: np.ndarray) -> int:
    """Pixels of the truth outline: green well above red and blue."""
    r, g, b = (rgb[..., c].astype(int) for c in range(3))
    return int(((g - r > 60) & (g - b > 60)).sum())


def two_subjects(tmp_path: Path) -> Path:
    """A page of two subjects of 6 slices; 'b' has tumor (and truth) on slices 2 and 3 only, most on 3."""
    out, rng = tmp_path / "out", np.random.default_rng(0)
    written = OutputFiles(out)
    written.claim(layer_paths(out, "a", 6) + layer_paths(out, "b", 6) + [out / "index.html"])
    grays = [rng.integers(0, 200, (64, 64), dtype=np.uint8) for _ in range(6)]
    masks, truths = [np.zeros((64, 64), np.uint8) for _ in range(6)], [np.zeros((64, 64), np.uint8) for _ in range(6)]
    masks[2][20:26, 20:26], masks[3][10:40, 12:44], truths[3][14:36, 16:40] = 1, 1, 1
    empty = [np.zeros((64, 64), np.uint8)] * 6
    subjects = [PageSubject("b", {"Dice": 0.25}, write_layers(written, out, "b", list(map(str, range(6))), grays,
                                                               masks, truths)),
                PageSubject("a", {"Dice": None}, write_layers(written, out, "a", list(map(str, range(6))), grays,
                                                               empty))]
    return write_page(written, out, "test page", ["Dice"], subjects, note="two subjects")


def test_the_page_opens_on_the_slice_of_largest_tumor_with_the_overlay(tmp_path):
    page = two_subjects(tmp_path)
    text = page.read_text()
    assert "http" not in text.replace("http-equiv", "") and "viewer/b/3.pred.png" in text
    assert not (page.parent / "viewer/a/0.pred.png").exists() and (page.parent / "viewer/b/3.truth.png").is_file()
    opened = screenshot(page, tmp_path)
    assert red_pixels(opened) > 2000 and green_pixels(opened) > 200  # 30 x 32 pixels shown 8x larger
    no_tumor = screenshot(page, tmp_path, "#subject=b&slice=5")
    assert red_pixels(no_tumor) == 0 and green_pixels(no_tumor) == 0
    small = screenshot(page, tmp_path, "?subject=b&slice=2")
    assert 0 < red_pixels(small) < red_pixels(opened)
    assert red_pixels(screenshot(page, tmp_path, "#subject=a")) == 0


def test_the_data_in_the_page_cannot_end_its_script(tmp_path):
    subject = PageSubject("</script><b>x", {"n": 1}, [])
    text = page_html("t", ["n"], [subject])
    data = text.split('<script id="data" type="application/json">')[1].split("</script>")[0]
    assert "<" not in data and json.loads(data)["subjects"][0]["name"] == "</script><b>x"
    assert page_html("scans/Müller²", [], []).isascii()  # written the same in any locale


def test_the_page_is_the_package_data_file_filled_in_once():
    template = Path(viewer.__file__).parent / "page" / "index.html"
    assert template.is_file() and viewer.template() == template.read_text(encoding="utf-8")
    source = Path(viewer.__file__).read_text(encoding="utf-8").lower()
    assert "<html" not in source and "<script" not in source and "<style" not in source  # no page in Python
    assert re.search(r'"tumorseg\.writers" = \["page/\*"\]', (REPO / "pyproject.toml").read_text())  # in the wheel
    text = page_html("__NOTE__ & __DATA__", [], [], note="n")
    assert "<title>__NOTE__ &amp; __DATA__</title>" in text and "__TITLE__" not in text  # a mark in a value stays
    assert text.count('<script id="data" type="application/json">{"columns": [], "subjects": []}</script>') == 1
