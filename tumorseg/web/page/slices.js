// PNG / JPEG slices as one subject, as tumorseg predict reads a folder of them (tumorseg/data/decode.py read_gray,
// tumorseg/data/layout.py slice_index): 8-bit gray (colour by OpenCV's BGR2GRAY weights), the file name's number
// the slice index that neighbours and the 3D steps go by.

/** The slice index a file name stands for (117.png -> 117); null when the name is not a number. */
export function sliceIndex(name) {
  const stem = name.split('/').pop().replace(/\.[^.]*$/, '');
  return /^[0-9]+$/.test(stem) ? Number(stem) : null;
}

/** One image file as 8-bit gray {gray, h, w}. */
async function decodeGray(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch {
    throw new Error(`${file.name} cannot be decoded (corrupt, truncated or not an image)`);
  }
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height), context = canvas.getContext('2d');
  context.drawImage(bitmap, 0, 0);
  const rgba = context.getImageData(0, 0, bitmap.width, bitmap.height).data, gray = new Uint8Array(bitmap.width * bitmap.height);
  for (let i = 0; i < gray.length; i++) gray[i] = (rgba[4 * i] * 4899 + rgba[4 * i + 1] * 9617 + rgba[4 * i + 2] * 1868 + 8192) >> 14;
  return { gray, h: bitmap.height, w: bitmap.width };
}

/** Image files as slices in slice-index order: {slices (K x H x W), k, h, w, numbers, names}; one size for all. */
export async function readSlices(files, maxPixels) {
  const order = [...files].sort((a, b) => (sliceIndex(a.name) ?? Infinity) - (sliceIndex(b.name) ?? Infinity) || a.name.localeCompare(b.name));
  const decoded = [];
  for (const file of order) {
    const one = await decodeGray(file);
    if (one.h * one.w > maxPixels) throw new Error(`${file.name} is ${one.w}x${one.h} pixels, above the page's limit`);
    if (decoded.length && (one.h !== decoded[0].h || one.w !== decoded[0].w)) {
      throw new Error(`${file.name} is ${one.w}x${one.h}, ${order[0].name} ${decoded[0].w}x${decoded[0].h}: the page takes slices of one size (tumorseg predict takes any)`);
    }
    decoded.push(one);
  }
  const { h, w } = decoded[0], slices = new Uint8Array(decoded.length * h * w);
  decoded.forEach((d, z) => slices.set(d.gray, z * h * w));
  return { slices, k: decoded.length, h, w, numbers: order.map((f) => sliceIndex(f.name)), names: order.map((f) => f.name) };
}
