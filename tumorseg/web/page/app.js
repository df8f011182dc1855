// The page: a scan in (file picker, drop, or ?url= on this origin), the model run in workers (worker.js), the
// result shown with NiiVue (three planes and a 3D rendering, the mask as an overlay) with its figures beside it,
// and the mask handed back as NIfTI on the scan's own grid. ?url=SCAN&mask=MASK shows a scan with an existing mask
// (tumorseg predict's *_mask.nii.gz) without loading the model. window.tumorseg exposes the state (for tests).
import { Niivue, NVImage, SHOW_RENDER } from './vendor/niivue/index.js';
import { volumeFigures } from './components.js';
import { announcedDims, gzip, maskNifti, seriesRowOrder } from './nifti.js';
import { readSlices } from './slices.js';
import { canonicalMask, slicesOf, storedMask, voxelMl } from './volume.js';

const $ = (id) => document.getElementById(id);
const VOLUME = /\.(nii|nii\.gz|nrrd|nhdr|mha|mhd)$/i, IMAGE = /\.(png|jpe?g)$/i;
const params = new URLSearchParams(location.search);
const state = { status: 'loading', message: '', name: null, figures: null, seconds: null, slicesPerSecond: null, threads: null };
let settings, nv = null, scan = null, masks = null, stored = null;

const base64 = (bytes) => { let s = ''; for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000)); return btoa(s); };
window.tumorseg = Object.assign(state, {
  maskBase64: () => base64(stored), canonicalMaskBase64: () => base64(masks), inputsBase64: () => base64(scan.slices),
  niftiBase64: () => base64(maskNifti(scan.hdr, stored)),
});

function say(message, status = state.status) {
  Object.assign(state, { message, status });
  $('status').textContent = message;
  $('status').className = status === 'error' ? 'error' : '';
}

// The workers hold the model, one WASM thread each: a scan's slices are shared out among them, which keeps the cores
// busier than one worker's threads do (one convolution at a time, split across threads), and needs no cross-origin
// isolation. They start when the page opens, so that the model loads while the user picks a scan, except for a scan
// opened with its mask, which needs no model (they start when a scan is to be segmented).
let workers = [], modelReady = null, pending = new Set();
function model() {
  if (modelReady) return modelReady;
  const count = Number(params.get('threads')) || Math.min(navigator.hardwareConcurrency || 1, 4);
  workers = Array.from({ length: count }, () => new Worker(new URL('./worker.js', import.meta.url), { type: 'module' }));
  modelReady = Promise.all(workers.map((worker) => ask(worker, { type: 'init', settings, threads: 1, base: location.href }, 'ready')))
    .then((ready) => { state.threads = ready.reduce((sum, r) => sum + r.threads, 0); });
  return modelReady;
}

/** Send a worker one message and wait for its answer of type `answer` (progress messages along the way). */
function ask(worker, message, answer, transfer = []) {
  return new Promise((resolve, reject) => {
    const settle = (done) => (value) => { pending.delete(reject); done(value); };
    pending.add(reject);
    worker.onmessage = ({ data }) => {
      if (data.type === answer) settle(resolve)(data);
      else if (data.type === 'progress') progress(data.done);
      else if (data.type === 'error') settle(reject)(new Error(data.message));
    };
    worker.onerror = (event) => settle(reject)(new Error(`the model's worker failed: ${event.message}`));
    worker.postMessage(message, transfer);
  });
}

/** Stop the workers at once (a failed run's others, or a run the user replaced by opening another scan), so that
 * none of them posts progress over what the page says next; their pending answers fail as `Cancelled`, and the next
 * scan starts fresh ones. */
class Cancelled extends Error {}
function stopWorkers() {
  workers.forEach((worker) => worker.terminate());
  workers = []; modelReady = null;
  const waiting = [...pending];
  pending.clear();
  waiting.forEach((reject) => reject(new Cancelled('cancelled')));
}

let done = 0, total = 0;
function progress(n) {
  done += n;
  $('progress').value = done / total;
  say(`Segmenting: ${done} of ${total} slices`);
}

/** A scan's masks (k x h x w, RAS order): its slices shared out among the workers, the 3D steps in the first. */
async function segment(read, tta) {
  const { slices, k, h, w, numbers } = read, size = settings.preprocessing.image_size ** 2;
  const share = Math.ceil(k / workers.length);
  done = 0; total = k;
  // each worker gets a copy of its slices and their neighbours only (a neighbour by slice number lies at most
  // context_slices items away in the sorted scan), not the whole scan each
  const c = settings.preprocessing.context_slices;
  const parts = await Promise.all(workers.map((worker, i) => {
    const from = Math.min(k, i * share), to = Math.min(k, from + share);
    const first = Math.max(0, from - c), own = slices.slice(first * h * w, Math.min(k, to + c) * h * w);
    return ask(worker, { type: 'probs', slices: own, first, k, h, w, numbers, tta, from, to }, 'probs', [own.buffer]);
  })).catch((err) => { stopWorkers(); throw err; });
  const probs = new Float32Array(k * size);
  let at = 0;
  for (const part of parts) { probs.set(part.probs, at); at += part.probs.length; }
  return (await ask(workers[0], { type: 'masks', probs, k, h, w, numbers }, 'masks', [probs.buffer])).masks;
}

async function start() {
  settings = await (await fetch('model.json')).json();
  $('tta').checked = params.has('tta') ? params.get('tta') === 'flip' : settings.tta.page_default === true;
  $('model').textContent = `${settings.source} (${settings.precision}, ${settings.members} net${settings.members > 1 ? 's' : ''}), ` +
    `threshold ${settings.threshold}; the model file's TTA is ${settings.tta.model_file}, this page offers none or flip.`;
  try {
    // a file dropped on the view is the page's to segment (the drop listener below), not NiiVue's to show as it is
    nv = new Niivue({ backColor: [0, 0, 0, 1], multiplanarShowRender: SHOW_RENDER.ALWAYS, isResizeCanvas: true, logLevel: 'error', dragAndDropEnabled: false });
    await nv.attachToCanvas($('gl'));
    nv.setSliceType(nv.sliceTypeMultiplanar);
  } catch (err) {
    nv = null;  // no WebGL2: the scan is still segmented and its figures shown
  }
  const urls = params.getAll('url'), mask = params.get('mask');
  if (mask) say('Ready: open or drop a scan (the model loads when one is to be segmented).', 'ready');
  else {
    await model();
    say(`Ready: open or drop a scan (the model on ${state.threads} thread${state.threads > 1 ? 's' : ''}).`, 'ready');
  }
  // a folder URL (a DICOM series, PNG slices) names the case, as tumorseg predict names it after its input folder
  const folder = urls.length === 1 && urls[0].endsWith('/') ? decodeURIComponent(new URL(urls[0], location.href).pathname.split('/').at(-2)) : null;
  if (urls.length) await load(await fetchFiles(urls), mask ? (await fetchFiles([mask]))[0] : null, folder);
}

/** Files fetched from this origin; a URL ending in / is a folder whose listing (tumorseg serve's) names them. */
async function fetchFiles(urls) {
  const files = [];
  for (const url of urls) {
    const address = new URL(url, location.href);
    if (address.origin !== location.origin) throw new Error(`${url} is on another site: the page reads files only from its own origin`);
    const response = await fetch(address);
    if (!response.ok) throw new Error(`${url} could not be fetched (${response.status} ${response.statusText})`);
    if (address.pathname.endsWith('/')) {
      const listing = new DOMParser().parseFromString(await response.text(), 'text/html');
      const names = [...listing.querySelectorAll('a')].map((a) => a.getAttribute('href')).filter((h) => h && !h.startsWith('?') && !h.endsWith('/') && !h.startsWith('.'));
      files.push(...await fetchFiles(names.map((n) => new URL(n, address).href)));
    } else {
      files.push(new File([await response.arrayBuffer()], decodeURIComponent(address.pathname.split('/').pop())));
    }
  }
  return files;
}

/** A scan as {hdr, img, name} read by NiiVue from a volume file, or from the NIfTI that dcm2niix makes of a series. */
async function readVolume(file) {
  const buffer = await file.arrayBuffer();
  let dims;
  try { dims = await announcedDims(buffer, file.name); } catch (err) { throw new Error(`${file.name} cannot be read: ${err.message}`); }
  checkDims(file.name, dims);
  let image;
  try {
    image = await NVImage.loadFromUrl({ url: file.name, buffer, name: file.name });
  } catch (err) {
    throw new Error(`${file.name} cannot be read (corrupt, cut short or not a volume): ${err.message || err}`);
  }
  const hdr = image.hdr, voxels = hdr.dims[1] * hdr.dims[2] * hdr.dims[3];
  checkDims(file.name, hdr.dims.slice(1, 1 + hdr.dims[0]));
  if (!image.img || image.img.length < voxels) throw new Error(`${file.name} is cut short: its header announces ${voxels} voxels, it holds ${image.img ? image.img.length : 0}`);
  // as tumorseg predict: without a qform or sform (NIfTI) or space directions (NRRD, which NiiVue turns into an sform)
  // the slices could reach the model mirrored or turned; NiiVue's MetaImage reader sets no code (its default applies)
  if (/\.(nii|nii\.gz|nrrd|nhdr)$/i.test(file.name) && !hdr.qform_code && !hdr.sform_code) throw new Error(`${file.name} does not say which way the patient lies (a NIfTI with qform_code and sform_code 0, or a NRRD without space directions), so its slices could be read mirrored or turned: convert the scan again with its orientation (e.g. dcm2niix from the DICOM series)`);
  checkSpacing(file.name, hdr);
  return { image, hdr, img: image.img, name: file.name };
}

// Voxel sides (mm) a patient's chest CT can have, as tumorseg predict checks them (tumorseg/volumes/headers.py)
const SPACING_MM = [0.05, 20];

/** As tumorseg predict: refuse a scan that states no voxel size (pixdim 0, which readers take for 1 mm), two (an
 * sform scaling otherwise than pixdim) or one no patient's CT has: its volume in mL would be wrong. */
function checkSpacing(name, hdr) {
  const n = Math.min(Math.max(hdr.dims[0], 1), 3), axes = [0, 1, 2].slice(0, n);
  const sides = axes.map((i) => Math.abs(hdr.pixDims[i + 1])), shown = sides.map((v) => +v.toPrecision(4)).join(' x ');
  if (!sides.every((v) => Number.isFinite(v) && v > 0)) throw new Error(`${name} states no voxel size (pixdim ${shown}), which readers take for 1 mm: fix the header (e.g. convert the scan again from DICOM with dcm2niix)`);
  if (!sides.every((v) => v >= SPACING_MM[0] && v <= SPACING_MM[1])) throw new Error(`${name} has voxels of ${shown} mm, outside the ${SPACING_MM[0]}-${SPACING_MM[1]} mm of a patient's CT, so its volumes in mL would be wrong: fix the voxel spacing in its header, or resample it`);
  if (hdr.sform_code > 0) {
    const scaled = axes.map((i) => Math.hypot(hdr.affine[0][i], hdr.affine[1][i], hdr.affine[2][i]));
    if (scaled.some((v, i) => Math.abs(v - sides[i]) > 1e-4 + 1e-3 * sides[i])) throw new Error(`${name} states two voxel sizes, ${shown} mm (pixdim) and ${scaled.map((v) => +v.toPrecision(4)).join(' x ')} mm (its sform), so its volumes in mL depend on the reader: fix the header (e.g. convert the scan again from DICOM with dcm2niix)`);
  }
}

function checkDims(name, dims) {
  if (!dims) return;
  if (dims.length > 3 && dims.slice(3).some((d) => d > 1)) throw new Error(`${name} is a 4D volume (${dims.join(' x ')}): the model segments one 3D scan; save one time point (frame) as its own file`);
  const voxels = dims.slice(0, 3).reduce((a, b) => a * b, 1);
  if (voxels > settings.limits.max_voxels) throw new Error(`${name} is ${dims.slice(0, 3).join(' x ')} = ${voxels.toExponential(2)} voxels, above this page's limit of ${settings.limits.max_voxels.toExponential(2)} (a browser tab's memory): segment it with tumorseg predict`);
}

async function dicomToNifti(files) {
  const { Dcm2niix } = await import('./vendor/dcm2niix/index.jpeg.js');
  const converter = new Dcm2niix();
  await converter.init();
  const out = await converter.input(files).b('n').z('n').run();
  const nifti = out.filter((f) => /\.nii$/i.test(f.name));
  if (nifti.length !== 1) throw new Error(nifti.length ? `the files hold ${nifti.length} series: open one series at a time` : 'no DICOM image series could be read from these files (corrupt, or not DICOM)');
  return new File([seriesRowOrder(new Uint8Array(await nifti[0].arrayBuffer()))], 'dicom-series.nii');
}

const stem = (name) => name.replace(/\.nii\.gz$|\.[^.]*$/i, '');

/** The case's name (the status line's, the download's), as tumorseg predict names a case: a volume file's name
 * without its suffix; files of a folder (a DICOM series, slices) after the folder (folder: a ?url= folder's or a
 * dropped folder's name; a folder picker's files carry theirs); other files after the first (first). */
function caseName(files, folder, first) {
  if (files.length === 1 && VOLUME.test(files[0].name)) return stem(files[0].name);
  return folder || (files[0].webkitRelativePath || '').split('/').slice(-2, -1)[0] || stem(first);
}

/** The scan the user gave, as {hdr, img, slices, k, h, w, numbers, name, image (NiiVue's), unitVoxels}. */
async function readScan(files, folder) {
  if (files.every((f) => IMAGE.test(f.name))) {
    const read = await readSlices(files, 1e8), name = caseName(files, folder, read.names[0]);
    // the stack as a volume: x = a slice's column, y = its row, z = the slice; identity turn into RAS order;
    // PNG / JPEG carry no spacing: 1 mm voxels (unitVoxels, said beside the figures)
    const hdr = { dims: [3, read.w, read.h, read.k, 1, 1, 1, 1], pixDims: [1, 1, 1, 1], affine: [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], sform_code: 2, qform_code: 0 };
    const image = await NVImage.loadFromUrl({ url: `${name}.nii`, buffer: maskNifti(hdr, read.slices, 0).buffer, name: `${name}.nii` });
    return { ...read, hdr: image.hdr, image, name, unitVoxels: true };
  }
  const one = files.length === 1 && VOLUME.test(files[0].name);
  const volume = await readVolume(one ? files[0] : await dicomToNifti(files));
  const first = files.map((f) => f.name).sort()[0];
  const read = slicesOf(volume.hdr, volume.img, settings.preprocessing.window);
  return { ...volume, ...read, name: caseName(files, folder, first), numbers: Array.from({ length: read.k }, (_, z) => z), unitVoxels: false };
}

function show(figures, seconds) {
  const ml = (v) => `${v.toFixed(2)} mL`;
  $('tumorMl').textContent = ml(figures.tumorMl);
  $('components').textContent = figures.components;
  $('largestMl').textContent = ml(figures.largestMl);
  $('sliceRange').textContent = figures.firstSlice === null ? 'none' : `${figures.firstSlice}-${figures.lastSlice}`;
  $('time').textContent = seconds === null ? 'mask given' : `${seconds.toFixed(1)} s (${(scan.k / seconds).toFixed(1)} slices/s)`;
}

async function display(maskBytes) {
  if (!nv) return;
  nv.volumes.slice().forEach((v) => nv.removeVolume(v));
  nv.addVolume(scan.image);
  const overlay = await NVImage.loadFromUrl({ url: 'mask.nii', buffer: maskBytes.buffer, name: 'mask.nii', colormap: 'red', opacity: Number($('opacity').value), cal_min: 0.5, cal_max: 1 });
  nv.addVolume(overlay);
  $('drop').style.display = 'none';
  const v = scan.image;
  $('level').value = Math.round((v.cal_min + v.cal_max) / 2);
  $('width').value = Math.round(v.cal_max - v.cal_min);
}

let loads = 0;
async function load(files, maskFile = null, folder = null) {
  if (!files.length) return;
  const mine = ++loads;
  // a scan opened while another is read or segmented replaces it: the older load stops at its next step, silently
  const current = (value) => { if (mine !== loads) throw new Cancelled('replaced by another scan'); return value; };
  if (pending.size) stopWorkers();
  try {
    Object.assign(state, { name: null, figures: null, seconds: null, slicesPerSecond: null });
    $('download').disabled = true;
    $('assumption').hidden = true;
    say(`Reading ${files.length > 1 ? `${files.length} files` : files[0].name}...`, 'reading');
    const read = current(await readScan(files, folder));
    state.name = read.name;
    let canonical, onGrid, seconds = null;
    if (maskFile) {
      const mask = current(await readVolume(maskFile));
      if ([1, 2, 3].some((i) => mask.hdr.dims[i] !== read.hdr.dims[i])) throw new Error(`${maskFile.name} is ${mask.hdr.dims.slice(1, 4).join(' x ')}, the scan ${read.hdr.dims.slice(1, 4).join(' x ')}: give the mask written for this scan`);
      onGrid = Uint8Array.from(mask.img, (v) => (v > 0 ? 1 : 0));
      canonical = canonicalMask(read.hdr, onGrid);
    } else {
      current(await model());
      say(`Segmenting ${read.k} slices...`, 'running');
      $('progress').hidden = false; $('progress').value = 0;
      const started = performance.now();
      canonical = current(await segment(read, $('tta').checked).finally(() => { if (mine === loads) $('progress').hidden = true; }));
      seconds = (performance.now() - started) / 1000;
      onGrid = storedMask(read.hdr, canonical);
    }
    scan = read; masks = canonical; stored = onGrid;
    Object.assign(state, { seconds, slicesPerSecond: seconds === null ? null : read.k / seconds });
    state.figures = volumeFigures(masks, scan.k, scan.h, scan.w, voxelMl(scan.hdr));
    show(state.figures, state.seconds);
    await display(maskNifti(scan.hdr, stored));
    current();
    $('download').disabled = false;
    const assumption = scan.unitVoxels ? ' The volume in mL assumes 1 mm voxels: PNG / JPEG slices carry no spacing.' : '';
    $('assumption').textContent = assumption.trim();
    $('assumption').hidden = !scan.unitVoxels;
    say(`${scan.name}: ${state.figures.tumorMl.toFixed(2)} mL of tumour in ${state.figures.components} component(s).${assumption}`, 'done');
  } catch (err) {
    if (mine === loads && !(err instanceof Cancelled)) say(`Error: ${err.message || err}`, 'error');
  }
}

$('download').onclick = async () => {
  const link = document.createElement('a');
  link.href = URL.createObjectURL(new Blob([await gzip(maskNifti(scan.hdr, stored))], { type: 'application/gzip' }));
  link.download = `${scan.name}_mask.nii.gz`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
};
$('opacity').oninput = () => { if (nv && nv.volumes.length > 1) nv.setOpacity(1, Number($('opacity').value)); };
const windowLevel = () => {
  if (!nv || !nv.volumes.length) return;
  const level = Number($('level').value), width = Math.max(1, Number($('width').value));
  Object.assign(nv.volumes[0], { cal_min: level - width / 2, cal_max: level + width / 2 });
  nv.updateGLVolume();
};
$('level').onchange = windowLevel; $('width').onchange = windowLevel;
$('files').onchange = (e) => load([...e.target.files]);
$('folder').onchange = (e) => load([...e.target.files]);
document.addEventListener('dragover', (e) => { e.preventDefault(); document.body.classList.add('dragging'); });
document.addEventListener('dragleave', () => document.body.classList.remove('dragging'));
// in the capture phase: NiiVue's canvas stops a drop's propagation, so a listener of the bubbling phase never hears one
document.addEventListener('drop', async (e) => {
  e.preventDefault();
  e.stopPropagation();
  document.body.classList.remove('dragging');
  const { files, folder } = await droppedFiles(e.dataTransfer);
  load(files, null, folder);
}, true);

/** The files of a drop {files, folder}, a dropped folder's (a DICOM series, slices) read through and its name. */
async function droppedFiles(transfer) {
  const entries = [...transfer.items].map((item) => item.webkitGetAsEntry && item.webkitGetAsEntry()).filter(Boolean);
  if (!entries.some((entry) => entry.isDirectory)) return { files: [...transfer.files], folder: null };
  const files = [];
  const walk = async (entry) => {
    if (entry.isFile) { files.push(await new Promise((resolve, reject) => entry.file(resolve, reject))); return; }
    const reader = entry.createReader();
    for (let batch = await new Promise((r, j) => reader.readEntries(r, j)); batch.length; batch = await new Promise((r, j) => reader.readEntries(r, j))) {
      for (const child of batch) await walk(child);
    }
  };
  for (const entry of entries) await walk(entry);
  return { files, folder: entries.length === 1 ? entries[0].name : null };
}

start().catch((err) => { if (!(err instanceof Cancelled)) say(`Error: ${err.message || err}`, 'error'); });
