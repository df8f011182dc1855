// A scan's voxels in the order the model was trained on, and back: tumorseg/volumes/orientation.py ported.
// Every volume is turned by whole-voxel flips and axis swaps into RAS voxel order (x index toward the patient's
// right, y toward anterior, z toward superior), as SimpleITK's DICOMOrient does for tumorseg predict; slice k is
// then volume[:, :, k] with rows the x index and columns the y index. An oblique volume goes to its nearest axes.
import { minmaxToUint8, windowToUint8 } from './preprocess.js';

/** The turn into RAS of a NIfTI header (NiiVue's hdr): for canonical axis j, the stored axis it reads and whether
 * it runs backwards; and the canonical sizes [X, Y, Z]. */
export function canonicalTurn(hdr) {
  const a = hdr.affine, sizes = [hdr.dims[1], hdr.dims[2], hdr.dims[3]];
  // ITK's LPS direction of stored axis i: the affine's column i, x and y negated (NIfTI's world is RAS)
  const columns = [0, 1, 2].map((i) => [-a[0][i], -a[1][i], a[2][i]]);
  const target = [-1, -1, 1];  // RAS in LPS: toward the right is -x, toward anterior -y, toward superior +z
  const axes = [], flips = [];
  for (let j = 0; j < 3; j++) {
    let best = -1, size = -1;
    columns.forEach((c, i) => {
      if (axes.includes(i)) return;
      if (Math.abs(c[j]) > size) { size = Math.abs(c[j]); best = i; }
    });
    axes.push(best);
    flips.push(Math.sign(columns[best][j]) !== target[j]);
  }
  return { axes, flips, sizes: axes.map((i) => sizes[i]) };
}

/** Per canonical axis the step and start in the stored voxel array (x fastest), so that canonical (x, y, z) is
 * stored index start + x * step[0] + y * step[1] + z * step[2]. */
function strides(hdr, turn) {
  const n = [hdr.dims[1], hdr.dims[2], hdr.dims[3]], stored = [1, n[0], n[0] * n[1]];
  let start = 0;
  const step = turn.axes.map((i, j) => {
    if (turn.flips[j]) { start += (n[i] - 1) * stored[i]; return -stored[i]; }
    return stored[i];
  });
  return { start, step };
}

// A chest CT in Hounsfield units has lungs and the air around the body below AIR_BELOW in at least MIN_AIR_SHARE of
// its voxels; a CT whose rescale was lost (0..4095) or an MR scan has none, and a fixed window would misread it
// (tumorseg/volumes/orientation.py check_hounsfield).
const AIR_BELOW = -500, MIN_AIR_SHARE = 0.01;

/** The scan as K slices of H x W = X x Y (RAS order) in its stored values (scl_slope / scl_inter applied), each
 * scaled to 8 bits as tumorseg predict does (window null: its own min..max; else [level, width], for a scan in HU
 * only). */
export function slicesOf(hdr, img, window) {
  const turn = canonicalTurn(hdr), [X, Y, Z] = turn.sizes, { start, step } = strides(hdr, turn);
  const slope = hdr.scl_slope && Number.isFinite(hdr.scl_slope) ? hdr.scl_slope : 1;
  const inter = Number.isFinite(hdr.scl_inter) ? hdr.scl_inter : 0;
  const out = new Uint8Array(X * Y * Z), values = new Float64Array(X * Y);
  let air = 0, lo = Infinity, hi = -Infinity;
  for (let z = 0; z < Z; z++) {
    for (let x = 0; x < X; x++) {
      const base = start + x * step[0] + z * step[2];
      for (let y = 0; y < Y; y++) {
        const v = img[base + y * step[1]] * slope + inter;
        if (!Number.isFinite(v)) throw new Error('the scan holds NaN or infinite voxels: tumorseg does not guess their value');
        values[x * Y + y] = v;
        if (v < AIR_BELOW) air++;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
    out.set(window ? windowToUint8(values, window[0], window[1]) : minmaxToUint8(values), z * X * Y);
  }
  if (window && air < MIN_AIR_SHARE * X * Y * Z) {
    throw new Error(`the scan is not a chest CT in Hounsfield units, which this model reads through a fixed window: ${(100 * air / (X * Y * Z)).toFixed(2)}% of its voxels lie below ${AIR_BELOW} (values ${lo} to ${hi}); give the CT in HU (a DICOM series with its rescale slope and intercept), or use a model trained on per-slice scaling`);
  }
  return { slices: out, k: Z, h: X, w: Y, turn };
}

/** Canonical K x H x W masks back in the scan's stored voxel order (the exact inverse of slicesOf's turn). */
export function storedMask(hdr, masks) {
  const turn = canonicalTurn(hdr), [X, Y, Z] = turn.sizes, { start, step } = strides(hdr, turn);
  const out = new Uint8Array(X * Y * Z);
  for (let z = 0; z < Z; z++) for (let x = 0; x < X; x++) {
    const base = start + x * step[0] + z * step[2], row = (z * X + x) * Y;
    for (let y = 0; y < Y; y++) out[base + y * step[1]] = masks[row + y];
  }
  return out;
}

/** A mask in the scan's stored order turned into canonical K x H x W (to count and show what a loaded mask holds). */
export function canonicalMask(hdr, stored) {
  const turn = canonicalTurn(hdr), [X, Y, Z] = turn.sizes, { start, step } = strides(hdr, turn);
  const out = new Uint8Array(X * Y * Z);
  for (let z = 0; z < Z; z++) for (let x = 0; x < X; x++) {
    const base = start + x * step[0] + z * step[2], row = (z * X + x) * Y;
    for (let y = 0; y < Y; y++) out[row + y] = stored[base + y * step[1]] ? 1 : 0;
  }
  return out;
}

/** The volume of one voxel in millilitres. */
export function voxelMl(hdr) {
  return Math.abs(hdr.pixDims[1] * hdr.pixDims[2] * hdr.pixDims[3]) / 1000;
}
