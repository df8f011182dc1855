// NIfTI-1 on the page's own terms: the size a file's header announces (read before the voxels, so that an oversized
// scan is refused without allocating it), and a uint8 mask written on a scan's grid (its header's geometry kept).

/** The first bytes of a possibly gzipped buffer, inflated (at least want bytes when the file has them). */
async function firstBytes(buffer, want) {
  const bytes = new Uint8Array(buffer);
  if (!(bytes[0] === 0x1f && bytes[1] === 0x8b)) return bytes.subarray(0, want);
  const reader = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip')).getReader();
  const parts = [];
  let have = 0;
  try {
    while (have < want) {
      const { value, done } = await reader.read();
      if (done) break;
      parts.push(value); have += value.length;
    }
  } finally { reader.cancel().catch(() => {}); }
  const out = new Uint8Array(have);
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

/** The dims a scan's header announces ([x, y, z, t]), or null when its format is not read here (NiiVue's loaders
 * then say what is wrong). NIfTI-1/2 (gzipped or not), NRRD and MetaImage headers. */
export async function announcedDims(buffer, name) {
  const lower = name.toLowerCase();
  if (/\.nii(\.gz)?$/.test(lower)) {
    const head = await firstBytes(buffer, 540);
    if (head.length < 348) throw new Error('the file is cut short: not even its 348-byte NIfTI header is there');
    const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
    for (const little of [true, false]) {
      const size = view.getInt32(0, little);
      if (size === 348) return [1, 2, 3, 4].map((i) => Math.max(1, view.getInt16(40 + 2 * i, little))).slice(0, view.getInt16(40, little) >= 4 ? 4 : 3);
      if (size === 540 && head.length >= 540) return [1, 2, 3, 4].map((i) => Math.max(1, Number(view.getBigInt64(16 + 8 * i, little)))).slice(0, Number(view.getBigInt64(16, little)) >= 4 ? 4 : 3);
    }
    throw new Error('its header is not a NIfTI header (damaged, or not a NIfTI file)');
  }
  if (/\.(nrrd|nhdr|mha|mhd)$/.test(lower)) {
    const text = new TextDecoder('latin1').decode(new Uint8Array(buffer, 0, Math.min(buffer.byteLength, 8192)));
    const match = text.match(/^(?:sizes|DimSize)\s*[:=]\s*([\d ]+)$/m);
    return match ? match[1].trim().split(/\s+/).map(Number) : null;
  }
  return null;
}

/** A NIfTI-1 file (uint8 voxels) on the grid of NiiVue's header hdr of the scan: its dims, spacing, sform and
 * qform kept, so that any reader puts the mask where the scan is; calMax 0 lets a viewer choose the display range. */
export function maskNifti(hdr, voxels, calMax = 1) {
  const out = new ArrayBuffer(352 + voxels.length), view = new DataView(out);
  view.setInt32(0, 348, true);
  const dims = [3, hdr.dims[1], hdr.dims[2], hdr.dims[3], 1, 1, 1, 1];
  dims.forEach((d, i) => view.setInt16(40 + 2 * i, d, true));
  view.setInt16(70, 2, true);  // DT_UINT8
  view.setInt16(72, 8, true);
  const pix = [hdr.pixDims[0] || 1, hdr.pixDims[1], hdr.pixDims[2], hdr.pixDims[3], 1, 1, 1, 1];
  pix.forEach((p, i) => view.setFloat32(76 + 4 * i, p, true));
  view.setFloat32(108, 352, true);  // vox_offset
  view.setFloat32(112, 1, true);  // scl_slope
  view.setUint8(123, (hdr.xyzt_units || 2) & 0x3f);
  view.setFloat32(124, calMax, true);  // cal_max
  view.setInt16(252, hdr.qform_code || 0, true);
  view.setInt16(254, hdr.sform_code || (hdr.qform_code ? 0 : 1), true);
  [hdr.quatern_b, hdr.quatern_c, hdr.quatern_d, hdr.qoffset_x, hdr.qoffset_y, hdr.qoffset_z]
    .forEach((v, i) => view.setFloat32(256 + 4 * i, v || 0, true));
  hdr.affine.slice(0, 3).forEach((row, r) => row.forEach((v, c) => view.setFloat32(280 + 16 * r + 4 * c, v, true)));
  new Uint8Array(out, 148, 11).set(new TextEncoder().encode('tumor mask'));
  new Uint8Array(out, 344, 4).set([0x6e, 0x2b, 0x31, 0x00]);  // "n+1"
  new Uint8Array(out, 352).set(voxels);
  return new Uint8Array(out);
}

/** dcm2niix's NIfTI-1 of a DICOM series (little-endian, uncompressed) with its rows back in the series' own order:
 * dcm2niix flips them (its default, "image rows flipped to cartesian coordinates"), so that without this the page's
 * grid, and the mask it hands back, would be the series' grid mirrored in rows with a moved origin, not the grid
 * tumorseg predict (ITK) reads, whose origin is the first slice's ImagePositionPatient. The same voxels, the sform
 * turned to match; the qform dropped (qform_code 0), the sform alone states the grid. */
export function seriesRowOrder(bytes) {
  const out = bytes.slice(), view = new DataView(out.buffer);
  if (view.getInt32(0, true) !== 348) throw new Error('the converted DICOM series is not a little-endian NIfTI-1 file');
  const [nx, ny] = [view.getInt16(42, true), view.getInt16(44, true)], offset = view.getFloat32(108, true);
  const frames = [3, 4, 5, 6, 7].reduce((n, i) => n * Math.max(1, view.getInt16(40 + 2 * i, true)), 1);
  const row = (nx * view.getInt16(72, true)) / 8;
  for (let plane = 0; plane < frames; plane++) {
    const start = offset + plane * ny * row;
    for (let y = 0; y < ny; y++) out.set(bytes.subarray(start + (ny - 1 - y) * row, start + (ny - y) * row), start + y * row);
  }
  for (let r = 0; r < 3; r++) {  // the first voxel is the old last row's: origin + (ny - 1) * column y; column y negated
    const at = 280 + 16 * r, column = view.getFloat32(at + 4, true);
    view.setFloat32(at + 12, view.getFloat32(at + 12, true) + (ny - 1) * column, true);
    view.setFloat32(at + 4, -column, true);
  }
  view.setInt16(252, 0, true);
  view.setInt16(254, view.getInt16(254, true) || 1, true);
  return out;
}

/** bytes gzipped (the browser's own CompressionStream). */
export async function gzip(bytes) {
  return new Uint8Array(await new Response(new Blob([bytes]).stream().pipeThrough(new CompressionStream('gzip'))).arrayBuffer());
}
