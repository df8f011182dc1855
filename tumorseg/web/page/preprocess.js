// How a slice reaches the net, as tumorseg predict makes it (tumorseg/volumes/orientation.py slices_of,
// tumorseg/data/preprocessing.py Preprocessing): 8-bit from the slice's own min..max (or a fixed window), resized to
// the model's size as OpenCV's INTER_AREA does, then (x / 255 - mean) / std. Probabilities go back to a slice's own
// size as OpenCV's INTER_LINEAR does on float32. The integer arithmetic below is OpenCV's, so the 8-bit inputs equal
// the CLI's bit for bit (tests/test_web.py compares them).

/** Round half to even, as numpy's rint and OpenCV's cvRound. */
export function rint(x) {
  const r = Math.round(x);
  return (r - x === 0.5 && r % 2 !== 0) ? r - 1 : r;
}

/** One slice's values (any numeric array) scaled from their own min..max to 0..255; a constant slice is zeros. */
export function minmaxToUint8(values) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
  const out = new Uint8Array(values.length);
  if (!(hi > lo)) return out;
  const range = hi - lo;
  for (let i = 0; i < values.length; i++) out[i] = rint((values[i] - lo) * 255.0 / range);
  return out;
}

/** One slice through the fixed window [level - width/2, level + width/2] onto 0..255, clipped. */
export function windowToUint8(values, level, width) {
  const out = new Uint8Array(values.length);
  const low = level - width / 2;
  for (let i = 0; i < values.length; i++) {
    const v = (values[i] - low) * 255.0 / width;
    out[i] = rint(Math.min(255, Math.max(0, v)));
  }
  return out;
}

/** OpenCV's INTER_AREA of an 8-bit h x w image to size x size (rows first). */
export function resizeArea(src, h, w, size) {
  if (h === size && w === size) return src;
  if (size <= h && size <= w) {
    const fx = w / size, fy = h / size;
    if (Number.isInteger(fx) && Number.isInteger(fy)) return areaIntegerScale(src, w, size, fx, fy);
    return areaFractional(src, h, w, size);
  }
  return areaUpscale(src, h, w, size);
}

/** Downscale by whole factors: the mean of each fx x fy block, rounded (2 x 2: (sum + 2) >> 2). */
function areaIntegerScale(src, w, size, fx, fy) {
  const out = new Uint8Array(size * size);
  const area = fx * fy, scale = Math.fround(1 / area);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let sum = 0;
      for (let dy = 0; dy < fy; dy++) {
        const row = (y * fy + dy) * w + x * fx;
        for (let dx = 0; dx < fx; dx++) sum += src[row + dx];
      }
      out[y * size + x] = area === 4 ? (sum + 2) >> 2 : Math.min(255, rint(Math.fround(sum * scale)));
    }
  }
  return out;
}

/** The source pixels each output pixel covers along one axis, with their shares (OpenCV's computeResizeAreaTab). */
function areaTable(ssize, dsize) {
  const scale = ssize / dsize, table = [];
  for (let d = 0; d < dsize; d++) {
    const fsx1 = d * scale, fsx2 = fsx1 + scale, cellWidth = Math.min(scale, ssize - fsx1);
    let sx1 = Math.ceil(fsx1), sx2 = Math.floor(fsx2);
    sx2 = Math.min(sx2, ssize - 1); sx1 = Math.min(sx1, sx2);
    const items = [];
    if (sx1 - fsx1 > 1e-3) items.push([sx1 - 1, Math.fround((sx1 - fsx1) / cellWidth)]);
    for (let s = sx1; s < sx2; s++) items.push([s, Math.fround(1 / cellWidth)]);
    if (fsx2 - sx2 > 1e-3) items.push([sx2, Math.fround(Math.min(Math.min(fsx2 - sx2, 1), cellWidth) / cellWidth)]);
    table.push(items);
  }
  return table;
}

/** Downscale by a fractional factor: area-weighted sums in float32, rounded. */
function areaFractional(src, h, w, size) {
  const xs = areaTable(w, size), ys = areaTable(h, size), out = new Uint8Array(size * size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let sum = 0;
      for (const [sy, wy] of ys[y]) {
        let row = 0;
        for (const [sx, wx] of xs[x]) row = Math.fround(row + Math.fround(src[sy * w + sx] * wx));
        sum = Math.fround(sum + Math.fround(row * wy));
      }
      out[y * size + x] = Math.min(255, Math.max(0, rint(sum)));
    }
  }
  return out;
}

/** OpenCV's INTER_AREA when enlarging: linear with area-mode weights, in 11-bit fixed point. */
function areaUpscale(src, h, w, size) {
  const xs = areaUpTable(w, size), ys = areaUpTable(h, size), out = new Uint8Array(size * size);
  const rows = new Int32Array(w ? size : 0), next = new Int32Array(size);
  for (let y = 0; y < size; y++) {
    const [sy, b0, b1] = ys[y], sy1 = Math.min(sy + 1, h - 1);
    horizontal(src, sy * w, xs, rows);
    horizontal(src, sy1 * w, xs, next);
    for (let x = 0; x < size; x++) {
      out[y * size + x] = Math.min(255, Math.max(0, (((b0 * (rows[x] >> 4)) >> 16) + ((b1 * (next[x] >> 4)) >> 16) + 2) >> 2));
    }
  }
  return out;
}

function horizontal(src, offset, xs, into) {
  for (let x = 0; x < xs.length; x++) {
    const [sx, a0, a1] = xs[x];
    into[x] = src[offset + sx] * a0 + (a1 ? src[offset + sx + 1] * a1 : 0);
  }
}

/** (source index, weight of it, weight of the next) per output index, enlarging ssize to dsize in area mode. */
function areaUpTable(ssize, dsize) {
  const scale = ssize / dsize, inv = dsize / ssize, table = [];
  for (let d = 0; d < dsize; d++) {
    let sx = Math.floor(d * scale);
    let f = Math.fround((d + 1) - (sx + 1) * inv);
    f = f <= 0 ? 0 : Math.fround(f - Math.floor(f));
    if (sx < 0) { f = 0; sx = 0; }
    if (sx >= ssize - 1) { f = 0; sx = ssize - 1; }
    table.push([sx, rint(Math.fround(1 - f) * 2048), rint(f * 2048)]);
  }
  return table;
}

/** OpenCV's INTER_LINEAR of a float32 h x w array to outH x outW (half-pixel centres, edges clamped), in float32. */
export function resizeLinear(src, h, w, outH, outW) {
  if (h === outH && w === outW) return src;
  const xs = linearTable(w, outW), ys = linearTable(h, outH), out = new Float32Array(outH * outW);
  const r0 = new Float32Array(outW), r1 = new Float32Array(outW);
  for (let y = 0; y < outH; y++) {
    const [sy, fy] = ys[y];
    linearRow(src, sy * w, xs, r0);
    linearRow(src, Math.min(sy + 1, h - 1) * w, xs, r1);
    const b0 = Math.fround(1 - fy);
    for (let x = 0; x < outW; x++) out[y * outW + x] = Math.fround(Math.fround(r0[x] * b0) + Math.fround(r1[x] * fy));
  }
  return out;
}

function linearRow(src, offset, xs, into) {
  for (let x = 0; x < xs.length; x++) {
    const [sx, f] = xs[x];
    const a = Math.fround(src[offset + sx] * Math.fround(1 - f));
    into[x] = f ? Math.fround(a + Math.fround(src[offset + sx + 1] * f)) : a;
  }
}

function linearTable(ssize, dsize) {
  const scale = 1 / (dsize / ssize), table = [];  // OpenCV's scale: the inverse of dsize / ssize
  for (let d = 0; d < dsize; d++) {
    let f = Math.fround((d + 0.5) * scale - 0.5);
    let sx = Math.floor(f);
    f = Math.fround(f - sx);
    if (sx < 0) { f = 0; sx = 0; }
    if (sx >= ssize - 1) { f = 0; sx = ssize - 1; }
    table.push([sx, f]);
  }
  return table;
}

/** 8-bit values -> float32 (x / 255 - mean) / std, into out (a Float32Array) at offset, as torch computes it. */
export function normalizeInto(u8, mean, std, out, offset) {
  const m = Math.fround(mean), s = Math.fround(std);
  for (let i = 0; i < u8.length; i++) out[offset + i] = Math.fround(Math.fround(Math.fround(u8[i] / 255) - m) / s);
}
