"""tumorseg export format=web and tumorseg serve (tumorseg/web/): the page segments a scan in headless Chromium as
tumorseg predict tta=false does with the same model file, however the scan comes in (a link, either file picker, a
drop; NIfTI, NRRD, MHA, a DICOM series, PNG / JPEG slices), hands the mask back on the scan's grid, shows a mask it
is given without the model, fetches nothing beyond its origin, and says what is wrong with a file it cannot segment."""

import base64
import contextlib
import csv
import gzip
import json
import os
import shutil
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
import SimpleITK as sitk
from filelock import FileLock

from tests.browser import CHROMIUM, Browser
from tests.conftest import assert_one_error, run_main, train_run
from tumorseg.inference.model_file import REFERENCE_MODEL, read_onnx_metadata, write_onnx_metadata
from tumorseg.volumes.orientation import slice_stack
from tumorseg.volumes.phantom import phantom_volume, write_dicom_series
from tumorseg.web.server import page_server

INT8 = REFERENCE_MODEL.with_name("lung_unet.int8.onnx")  # what the page of the shipped model runs
FINISHED = "window.tumorseg && ['done', 'error'].includes(window.tumorseg.status)"
READY = "window.tumorseg && window.tumorseg.status === 'ready'"
# The scans of data/volumes/ (a name: what tumorseg predict names the case): the 3D phantom stored as the phantom
# is (x and y flipped, turned 8 degrees), stored LPS as scanners store slices, and (a DICOM series) stored RPI, its
# slices from the top down; NRRD and MHA compressed or not
VOLUMES = {"phantom.nii.gz": "phantom", "nrrd-gz.nrrd": "nrrd-gz", "nrrd-raw.nrrd": "nrrd-raw",
           "mha-gz.mha": "mha-gz", "mha-raw.mha": "mha-raw", "dicom/": "dicom", "dicom-rpi/": "dicom-rpi"}


# Half the phantom's slices (its tumours are in both halves): each volume costs the page half the net's time
SIZE = (64, 64, 12)


def write_volumes(folder: Path) -> None:
    """The phantom as every volume of VOLUMES (the .nii.gz and -gz ones as made, the -raw ones and dicom stored LPS,
    dicom-rpi RPI)."""
    made, lps = phantom_volume(size=SIZE)[0], phantom_volume(size=SIZE, orientation="LPS")[0]
    for name, image, compressed in [("phantom.nii.gz", made, True), ("nrrd-gz.nrrd", made, True),
                                    ("nrrd-raw.nrrd", lps, False), ("mha-gz.mha", made, True),
                                    ("mha-raw.mha", lps, False)]:
        sitk.WriteImage(image, str(folder / name), useCompression=compressed)
    write_dicom_series(folder / "dicom", size=SIZE, orientation="LPS")
    # its own description, so its own UIDs
    write_dicom_series(folder / "dicom-rpi", size=SIZE, description="phantom chest CT, RPI", orientation="RPI")


def write_slices(images: Path, data: Path) -> None:
    """One subject of the 2D phantom as PNG slices (data/png/<subject>/) and as JPEG (data/jpeg/<subject>/)."""
    shutil.copytree(images, data / "png" / images.name)
    (data / "jpeg" / images.name).mkdir(parents=True)
    for png in images.glob("*.png"):
        cv2.imwrite(str(data / "jpeg" / images.name / f"{png.stem}.jpg"), cv2.imread(str(png), cv2.IMREAD_GRAYSCALE))


def bad_inputs(data: Path) -> None:
    """A cut-short NIfTI, a 4D volume, a NIfTI whose header announces 2000^3 voxels (8e9, a few bytes given), a
    NIfTI and a NRRD that do not state their orientation, a NIfTI that states no voxel size (tumorseg predict
    refuses these three)."""
    whole = (data / "volumes" / "phantom.nii.gz").read_bytes()
    plain = bytearray(gzip.decompress(whole))
    plain[252:256] = np.array([0, 0], "<i2").tobytes()  # qform_code, sform_code
    (data / "unoriented.nii").write_bytes(bytes(plain))
    sitk.WriteImage(sitk.ReadImage(str(data / "volumes" / "phantom.nii.gz")), str(data / "unoriented.nrrd"), False)
    head, blank, voxels = (data / "unoriented.nrrd").read_bytes().partition(b"\n\n")
    lines = [line for line in head.split(b"\n") if not line.startswith((b"space", b"measurement frame"))]
    (data / "unoriented.nrrd").write_bytes(b"\n".join(lines + [b"spacings: 0.7 0.7 2.5"]) + blank + voxels)
    (data / "cut.nii.gz").write_bytes(whole[: len(whole) // 2])
    unsized = bytearray(gzip.decompress(whole))
    unsized[80:92] = np.zeros(3, "<f4").tobytes()  # pixdim 0: no voxel size (the sform keeps its 0.7 x 0.7 x 2.5 mm)
    (data / "unsized.nii").write_bytes(bytes(unsized))
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 4, 8, 8), np.int16)), str(data / "frames.nii"))
    header = bytearray((data / "frames.nii").read_bytes())
    header[40:48] = np.array([3, 2000, 2000, 2000], "<i2").tobytes()
    (data / "huge.nii").write_bytes(bytes(header))


def built_once(tmp_path_factory, name: str, build) -> Path:
    """A folder that build(folder) fills once in the whole test session, by whichever xdist worker comes first (the
    others wait on its lock, then only read it): the page and predict's masks cost seconds each."""
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / name
    with FileLock(f"{folder}.lock"):
        if not (folder / ".built").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / ".built").touch()
    return folder


def build_site(root: Path, images: Path) -> None:
    """root/page: the shipped model's page with scans below it in data/ (images: a 2D phantom subject), and in
    data/pred/ tumorseg predict tta=false's output for every scan of data/volumes/ with the page's model file
    (<name>_mask.* and summary.csv)."""
    result = run_main("tumorseg.export", "format=web", f"output={root / 'page'}", f"hydra.run.dir={root / 'log'}")
    assert result.returncode == 0, result.stderr[-2000:]
    data = root / "page" / "data"
    (data / "volumes").mkdir(parents=True)
    write_volumes(data / "volumes")
    write_slices(images, data)
    bad_inputs(data)
    out = data / "pred"
    result = run_main("tumorseg.predict", f"input={data / 'volumes'}", f"output={out}", "tta=false",
                      f"ckpt_path={INT8}", "viewer=false", f"hydra.run.dir={root / 'pred-log'}")
    assert result.returncode == 0, result.stderr[-2000:]


@contextlib.contextmanager
def serving(page: Path):
    """tumorseg serve's server of page on a free port, in a thread, for the block: its address."""
    server = page_server(page, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def site(tmp_path_factory, data_dir):
    """(address, folder) of a served page of the shipped model, with scans below it in data/ (build_site, built once
    per session and served by each worker)."""
    images = sorted((data_dir / "phantom" / "val" / "images").iterdir())[0]
    page = built_once(tmp_path_factory, "web-site", lambda root: build_site(root, images)) / "page"
    with serving(page) as address:
        yield address, page


@pytest.fixture(scope="module")
def cli(site) -> Path:
    """tumorseg predict tta=false's output for every scan of data/volumes/ with the page's model file (served, in
    data/pred/: <name>_mask.* and summary.csv; made with the page by build_site)."""
    return site[1] / "data" / "pred"


def cli_mask(pred: Path, name: str) -> sitk.Image:
    """The CLI's mask of the case name (<name>_mask.nii.gz, .nrrd or .mha as its input)."""
    (mask,) = pred.glob(f"{name}_mask.*")
    return sitk.ReadImage(str(mask))


@pytest.fixture(scope="module")
def by_url() -> dict:
    """The page's results by ?url= (address -> state), each computed once for the tests that compare with it."""
    return {}


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: make install (or make test-tools) installs it")
    chromium = Browser(tmp_path_factory.mktemp("chromium"))
    yield chromium
    chromium.close()


def result(browser: Browser) -> dict:
    """The page's state once it finished, its masks decoded (maskBase64: the scan's stored order; canonical...: RAS)."""
    state = json.loads(browser.wait_for(f"{FINISHED} && JSON.stringify(window.tumorseg)", 300))
    assert state["status"] == "done", state
    for name in ("maskBase64", "canonicalMaskBase64"):
        state[name] = np.frombuffer(base64.b64decode(browser.evaluate(f"tumorseg.{name}()")), np.uint8)
    return state


def segmented(browser: Browser, address: str) -> dict:
    """Open the page at address, wait for its result (result())."""
    browser.open(address)
    return result(browser)


def opened(browser: Browser, address: str, by_url: dict, url: str) -> dict:
    """The page's result of ?url=url (once per module)."""
    if url not in by_url:
        by_url[url] = segmented(browser, f"{address}?url={url}")
    return by_url[url]


def ready(browser: Browser, address: str) -> None:
    """Open the page with no scan and wait until it takes one."""
    browser.open(address)
    browser.wait_for(READY, 120)


def assert_same(page: np.ndarray, cli: np.ndarray, figures: dict, spacing) -> None:
    """Every voxel equal and the tumour volume within 1 %. The issue asks >= 99.5 % of voxels, but the page's steps
    are the CLI's, and a share of all voxels would pass a wrong mask of a small tumour (the phantom's 30 voxels
    mirrored are still 99.9 % of its 98,304)."""
    assert page.shape == cli.shape and (page == cli).all(), ((page != cli).sum(), page.sum(), cli.sum())
    ml = cli.sum() * np.prod(spacing) / 1000
    assert figures["tumorMl"] == pytest.approx(ml, rel=0.01, abs=1e-9), (figures, ml)


def assert_as_predict(state: dict, mask: sitk.Image, stored: bool = True) -> None:
    """The page's masks are the CLI's mask: in RAS order, and (stored) in the scan's own voxel order."""
    assert sitk.GetArrayViewFromImage(mask).any()  # a mask to compare: all zeros on both sides would prove little
    assert_same(state["canonicalMaskBase64"], slice_stack(mask).ravel(), state["figures"], mask.GetSpacing())
    if stored:
        assert_same(state["maskBase64"], sitk.GetArrayFromImage(mask).ravel(), state["figures"], mask.GetSpacing())


def assert_own_origin(browser: Browser, address: str) -> None:
    """Every request of the page and its workers went to the page's origin (data: and blob: never leave it)."""
    assert any(url.endswith("model.onnx") for url in browser.requests), browser.requests  # workers' requests seen
    outside = [u for u in browser.requests if not u.startswith((address, "data:", "blob:"))]
    assert not outside, outside


def scan_image(path: Path) -> sitk.Image:
    """The scan a volume file or a DICOM series folder holds, as SimpleITK reads it."""
    if not path.is_dir():
        return sitk.ReadImage(str(path))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path)))
    return reader.Execute()


def summary_row(pred: Path, scan: Path) -> dict:
    """predict's summary.csv row of scan."""
    with open(pred / "summary.csv", newline="") as f:
        (row,) = [r for r in csv.DictReader(f) if Path(r["path"]) == scan]
    return row


@pytest.mark.slow
@pytest.mark.parametrize("url", VOLUMES)
def test_a_volume_is_segmented_as_predict_does_and_downloaded_on_its_grid(site, cli, browser, by_url, url, tmp_path):
    address, page = site
    state = by_url[f"data/volumes/{url}"] = segmented(browser, f"{address}?url=data/volumes/{url}")
    name, mask = VOLUMES[url], cli_mask(cli, VOLUMES[url])
    assert_as_predict(state, mask)  # on the scan's own grid (its stored voxel order), and in RAS order
    assert state["name"] == name and "1 mm" not in state["message"]
    assert state["figures"]["components"] >= 1 and state["threads"] >= 1
    assert_own_origin(browser, address)
    # the button: a NIfTI named as predict names the mask, that readers put on the scan's grid
    download = browser.download("document.getElementById('download').click()", tmp_path)
    assert download.name == f"{name}_mask.nii.gz"
    saved, scan = sitk.ReadImage(str(download)), scan_image(page / "data" / "volumes" / url)
    assert saved.GetSize() == scan.GetSize() and np.allclose(saved.GetSpacing(), scan.GetSpacing(), atol=1e-5)
    assert np.allclose(saved.GetOrigin(), scan.GetOrigin(), atol=1e-3)
    assert np.allclose(saved.GetDirection(), scan.GetDirection(), atol=1e-4)
    assert (sitk.GetArrayFromImage(saved) == sitk.GetArrayFromImage(mask)).all()


@pytest.mark.slow
@pytest.mark.parametrize("picker, chosen, url, name", [
    ("#files", "phantom.nii.gz", "phantom.nii.gz", "phantom"),
    ("#folder", "dicom", "dicom/", "dicom"),  # the folder picker: the folder chosen, the page given its files
    ("#files", "dicom/*.dcm", "dicom/", "s0_0001"),  # the files of a series chosen: named after the first
])
def test_a_scan_chosen_in_a_file_picker_is_segmented_as_by_link(site, cli, browser, by_url, picker, chosen, url, name):
    address, page = site
    ready(browser, address)
    browser.choose_files(picker, sorted((page / "data" / "volumes").glob(chosen)))
    state = result(browser)
    linked = opened(browser, address, by_url, f"data/volumes/{url}")
    assert (state["maskBase64"] == linked["maskBase64"]).all() and state["figures"] == linked["figures"]
    assert_as_predict(state, cli_mask(cli, VOLUMES[url]))
    assert state["name"] == name


@pytest.mark.slow
@pytest.mark.parametrize("dropped, url", [("mha-raw.mha", "mha-raw.mha"), ("dicom", "dicom/")])
def test_a_file_or_folder_dropped_on_the_view_is_segmented(site, cli, browser, dropped, url):
    address, page = site
    ready(browser, address)
    browser.drop_files("#view", [page / "data" / "volumes" / dropped])
    state = result(browser)
    assert_as_predict(state, cli_mask(cli, VOLUMES[url]))
    assert state["name"] == VOLUMES[url]


@pytest.mark.slow
def test_a_scan_opened_while_another_is_segmented_replaces_it(site, cli, browser, by_url):
    # the first run's workers are stopped: none of its progress lands on the second scan's status, its result neither
    address, page = site
    browser.open(f"{address}?url=data/volumes/phantom.nii.gz&threads=1&tta=flip")  # one worker: slow enough to catch
    browser.wait_for("window.tumorseg && tumorseg.status === 'running' && tumorseg.message.includes(' of ')", 120)
    browser.evaluate("document.getElementById('tta').checked = false")  # the second as the CLI's tta=false
    browser.choose_files("#files", [page / "data" / "volumes" / "mha-raw.mha"])
    state = result(browser)
    assert state["name"] == "mha-raw" and state["message"].startswith("mha-raw: "), state
    time.sleep(1.5)  # what a stopped worker would have posted by now
    assert json.loads(browser.evaluate("JSON.stringify(window.tumorseg)"))["message"] == state["message"]
    assert_as_predict(state, cli_mask(cli, "mha-raw"))


@pytest.mark.slow
def test_an_existing_mask_is_shown_without_the_model(site, cli, browser):
    address, page = site
    state = segmented(browser, f"{address}?url=data/volumes/phantom.nii.gz&mask=data/pred/phantom_mask.nii.gz")
    fetched = [u for u in browser.requests if not u.startswith("data:")]
    assert any(u.endswith("data/pred/phantom_mask.nii.gz") for u in fetched), fetched
    assert not [u for u in fetched if u.endswith((".onnx", "worker.js")) or "onnxruntime" in u], fetched
    assert state["seconds"] is None and state["threads"] is None  # no model loaded, none run
    assert_as_predict(state, cli_mask(cli, "phantom"))
    row = summary_row(cli, page / "data" / "volumes" / "phantom.nii.gz")
    # summary.csv rounds to 4 decimals: the page's figure lies within half its last digit
    assert state["figures"]["tumorMl"] == pytest.approx(float(row["tumor_ml"]), abs=5.1e-5), (state, row)
    assert state["figures"]["components"] == int(row["components"])
    shown = browser.evaluate("document.getElementById('tumorMl').textContent")
    assert shown == f"{state['figures']['tumorMl']:.2f} mL" and shown in state["message"]


@pytest.mark.slow
@pytest.mark.parametrize("how, kind", [("link", "png"), ("folder picker", "jpeg"), ("files picker", "png")])
def test_slices_are_named_after_their_folder_and_their_volume_said_to_assume_1mm(site, browser, how, kind):
    address, page = site
    (subject,) = (page / "data" / kind).iterdir()
    files = sorted(subject.iterdir(), key=lambda path: int(path.stem))
    if how == "link":
        browser.open(f"{address}?url=data/{kind}/{subject.name}/")
    else:
        ready(browser, address)
        browser.choose_files("#folder" if how == "folder picker" else "#files",
                             [subject] if how == "folder picker" else files[::-1])
    state = result(browser)
    assert state["name"] == (files[0].stem if how == "files picker" else subject.name), state
    assert len(state["canonicalMaskBase64"]) == len(files) * 64 * 64
    assert "assumes 1 mm voxels" in state["message"] and "carry no spacing" in state["message"], state
    note = browser.evaluate("(n => n.hidden ? '' : n.textContent)(document.getElementById('assumption'))")
    assert "assumes 1 mm voxels" in note
    assert state["figures"]["tumorMl"] == pytest.approx(state["figures"]["tumorVoxels"] / 1000)


@pytest.mark.parametrize("name, words", [("cut.nii.gz", "cut.nii.gz"), ("frames.nii", "4D volume"),
                                         ("huge.nii", "above this page's limit"),
                                         ("unoriented.nii", "which way the patient lies"),
                                         ("unoriented.nrrd", "which way the patient lies"),
                                         ("unsized.nii", "states no voxel size (pixdim 0 x 0 x 0)")])
def test_a_file_the_page_cannot_segment_is_one_message(site, browser, name, words):
    address, _ = site
    browser.open(f"{address}?url=data/{name}")
    state = json.loads(browser.wait_for(f"{FINISHED} && JSON.stringify(window.tumorseg)", 120))
    assert state["status"] == "error" and words in state["message"], state
    assert words in browser.evaluate("document.getElementById('status').textContent")


def test_serve_sends_the_headers_that_isolate_the_page(site):
    address, _ = site
    with urllib.request.urlopen(address) as response:
        headers = response.headers
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    with urllib.request.urlopen(address + "vendor/onnxruntime-web/ort-wasm-simd-threaded.wasm") as response:
        assert response.headers["Content-Type"] == "application/wasm"
    with urllib.request.urlopen(address + "vendor/onnxruntime-web/ort.wasm.min.mjs") as response:
        assert response.headers["Content-Type"].startswith("text/javascript")


def test_model_json_states_the_model_files_choices(site):
    _, page = site
    settings = json.loads((page / "model.json").read_text())
    assert settings["precision"] == "int8" and settings["threshold"] == 0.3
    assert settings["tta"] == {"model_file": "affine", "page_default": False, "page_offers": [False, True]}
    assert (page / "model.onnx").read_bytes() == INT8.read_bytes()
    size = sum(f.stat().st_size for f in page.rglob("*") if f.is_file() and "data" not in f.relative_to(page).parts)
    assert 15e6 < size < 30e6, size


def test_export_web_refuses_a_folder_in_use(tmp_path):
    (tmp_path / "page").mkdir()
    (tmp_path / "page" / "notes.txt").write_text("mine")
    result = run_main("tumorseg.export", "format=web", f"output={tmp_path / 'page'}", f"hydra.run.dir={tmp_path}/l")
    assert_one_error(result, "is a folder that is not empty", "overwrite=true")
    assert (tmp_path / "page" / "notes.txt").read_text() == "mine"


def test_export_web_makes_an_fp32_page_of_a_model_without_int8_twin(trained_run, tmp_path):
    ckpt = next((trained_run / "checkpoints").glob("epoch_*.ckpt"))
    result = run_main("tumorseg.export", "format=web", f"ckpt_path={ckpt}", f"output={tmp_path / 'page'}",
                      f"hydra.run.dir={tmp_path}/l")
    assert result.returncode == 0, result.stderr[-2000:]
    settings = json.loads((tmp_path / "page" / "model.json").read_text())
    assert settings["precision"] == "32" and settings["source"] == ckpt.name


@pytest.mark.parametrize("args, words", [(["dir=/nonexistent/page"], "is not a folder"),
                                         ([], "no page folder given")])
def test_serve_refuses_what_is_not_a_page(args, words, tmp_path):
    assert_one_error(run_main("tumorseg.serve", *args), words)


def test_serve_takes_the_folder_as_its_argument(tmp_path):
    result = run_main("tumorseg.serve", str(tmp_path))  # an empty folder: no page, one line naming it
    assert_one_error(result, f"dir={tmp_path} holds no page")



def served(page: Path, browser: Browser, *urls: str) -> list[dict]:
    """The page's state after opening each ?url= (its result, or its message) on a server of its own."""
    states = []
    with serving(page) as address:
        for url in urls:
            browser.open(f"{address}?url={url}")
            states.append(json.loads(browser.wait_for(f"{FINISHED} && JSON.stringify(window.tumorseg)", 300)))
            if states[-1]["status"] == "done":
                states[-1] = result(browser)
    return states


@pytest.mark.slow
def test_a_model_of_windowed_slices_reads_the_scan_through_its_window(site, cli, browser, tmp_path):
    """A model trained on slices made through a fixed HU window (convert preprocess.window=, data.window=) records
    it: the page reads the scan through it as predict does (not as the per-slice scaling of the shipped model, whose
    mask differs), and refuses a scan that is not in HU (stored values 0..4095) in one message."""
    windowed = tmp_path / "windowed.int8.onnx"
    shutil.copyfile(INT8, windowed)
    write_onnx_metadata(windowed, {**read_onnx_metadata(INT8), "window": [-100, 1800]})
    page = tmp_path / "page"
    assert run_main("tumorseg.export", "format=web", f"ckpt_path={windowed}", f"output={page}",
                    f"hydra.run.dir={tmp_path}/l").returncode == 0
    assert json.loads((page / "model.json").read_text())["preprocessing"]["window"] == [-100, 1800]
    (page / "data").mkdir()
    scan = shutil.copyfile(site[1] / "data" / "volumes" / "phantom.nii.gz", page / "data" / "phantom.nii.gz")
    raw = sitk.Cast(sitk.ReadImage(str(scan)), sitk.sitkInt16) + 1024  # the stored values of a CT, rescale lost
    sitk.WriteImage(raw, str(page / "data" / "raw.nii.gz"))
    pred = tmp_path / "pred"
    result = run_main("tumorseg.predict", f"input={scan}", f"output={pred}", "tta=false", f"ckpt_path={windowed}",
                      "viewer=false", f"hydra.run.dir={pred}-log")
    assert result.returncode == 0, result.stderr[-2000:]
    state, refused = served(page, browser, "data/phantom.nii.gz", "data/raw.nii.gz")
    mask = cli_mask(pred, "phantom")
    assert_as_predict(state, mask)
    assert (sitk.GetArrayFromImage(mask) != sitk.GetArrayFromImage(cli_mask(cli, "phantom"))).any()
    assert refused["status"] == "error" and "not a chest CT in Hounsfield units" in refused["message"], refused


@pytest.mark.slow
def test_a_scan_shared_among_workers_is_segmented_as_by_one_with_neighbour_slices(data_dir, browser, tmp_path):
    """A 2.5D model (each slice read with its neighbours) on 1 and on 3 workers: the shares of the 12 slices meet where
    a slice's neighbour is in another worker's share, and the 3D steps run on the whole scan, so the masks are the
    same voxel for voxel, and predict's with the page's own ONNX file (native fp32 against WASM fp32: a voxel whose
    probability is within rounding of the threshold may differ)."""
    run, _ = train_run(data_dir, tmp_path, "data.context_slices=1", "trainer.max_epochs=6",
                       "trainer.limit_train_batches=8", "model.base_channels=8", "optimizer.lr=3e-3")
    page = tmp_path / "page"
    assert run_main("tumorseg.export", "format=web", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
                    f"output={page}", f"hydra.run.dir={tmp_path}/l").returncode == 0
    (page / "data").mkdir()
    sitk.WriteImage(phantom_volume(size=SIZE)[0], str(page / "data" / "phantom.nii.gz"))
    pred = tmp_path / "pred"
    result = run_main("tumorseg.predict", f"input={page / 'data'}", f"output={pred}", "tta=false", "threshold=0.05",
                      f"ckpt_path={page / 'model.onnx'}", "viewer=false", f"hydra.run.dir={pred}-log")
    assert result.returncode == 0, result.stderr[-2000:]
    settings = json.loads((page / "model.json").read_text())
    assert settings["preprocessing"]["context_slices"] == 1 and settings["precision"] == "32"
    settings["threshold"] = 0.05  # a tiny net's probabilities are low: the threshold predict was given
    (page / "model.json").write_text(json.dumps(settings))
    one, three = served(page, browser, "data/phantom.nii.gz&threads=1", "data/phantom.nii.gz&threads=3")
    assert (one["threads"], three["threads"]) == (1, 3)
    assert (one["canonicalMaskBase64"] == three["canonicalMaskBase64"]).all()
    cli = slice_stack(cli_mask(pred, "phantom")).ravel()
    assert cli.sum() > 100 and (three["canonicalMaskBase64"] == cli).mean() >= 0.995
    assert three["canonicalMaskBase64"].sum() == pytest.approx(cli.sum(), rel=0.01)
