// The segmentation path of tumorseg predict (tumorseg/inference/segment.py Segmenter.subject), off the page's main
// thread, in two steps so that several of these workers share a scan: `probs` runs slices from..to-1 of a scan
// (8-bit, RAS order) -> resize to the model's size -> neighbours (2.5D) -> normalize -> the net (onnxruntime-web,
// WASM) -> sigmoid (TTA views averaged); `masks` takes every slice's probabilities -> 3D steps -> back to the slices'
// size -> threshold -> small components removed. Messages: init {settings, threads} -> ready;
// probs {slices (items first.. of the scan's k), first, k, h, w, numbers, tta, from, to} -> progress {done} ...,
// probs {probs}; masks {probs, k, h, w,
// numbers} -> masks {masks}; anything that fails -> error {message}.
import * as ort from './vendor/onnxruntime-web/ort.wasm.min.mjs';
import { removeSmall, subjectRegions } from './components.js';
import { normalizeInto, resizeArea, resizeLinear } from './preprocess.js';

let session = null, settings = null;
const BATCH = 4;

async function init(message) {
  settings = message.settings;
  ort.env.wasm.wasmPaths = new URL('./vendor/onnxruntime-web/', import.meta.url).href;
  ort.env.wasm.numThreads = message.threads;
  session = await ort.InferenceSession.create(new URL(settings.model, message.base).href,
    { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  // One batch of zeros while the user picks a scan: the first run of a WASM session prepares its kernels and
  // buffers (0.4-0.5 s more than a later batch of 4 on one thread in Node here), which would otherwise fall on the
  // first scan's slices.
  const prep = settings.preprocessing, channels = 2 * prep.context_slices + 1, s = prep.image_size;
  await session.run({ image: new ort.Tensor('float32', new Float32Array(BATCH * channels * s * s), [BATCH, channels, s, s]) });
  postMessage({ type: 'ready', threads: ort.env.wasm.numThreads });
}

/** Item indices of slice k's neighbours k-c..k+c of the same run of slice numbers (k itself where one is missing),
 * as tumorseg/data/context.py context_table. */
function contextTable(numbers, c) {
  const where = new Map(numbers.map((n, i) => [n, i]));
  return numbers.map((n, i) => Array.from({ length: 2 * c + 1 }, (_, d) => (n === null ? i : where.get(n + d - c) ?? i)));
}

function sigmoid(x) { return Math.fround(1 / (1 + Math.exp(-x))); }

/** The mean probability of the views (flip: the slice and its mirror) of a batch, as Float32Arrays of s x s. */
async function probabilities(input, n, channels, s, tta) {
  const shape = [n, channels, s, s];
  const { logits } = await session.run({ image: new ort.Tensor('float32', input, shape) });
  const probs = Array.from({ length: n }, (_, b) => Float32Array.from(logits.data.subarray(b * s * s, (b + 1) * s * s), sigmoid));
  if (!tta) return probs;
  const flipped = new Float32Array(input.length);
  for (let row = 0; row < input.length / s; row++) {
    for (let x = 0; x < s; x++) flipped[row * s + x] = input[row * s + s - 1 - x];
  }
  const back = (await session.run({ image: new ort.Tensor('float32', flipped, shape) })).logits.data;
  return probs.map((p, b) => p.map((v, i) => {
    const row = Math.floor(i / s), x = i % s;
    return Math.fround(Math.fround(v + sigmoid(back[b * s * s + row * s + s - 1 - x])) / 2);
  }));
}

/** Probabilities of slices from..to-1 (only those slices and their neighbours are resized), as one Float32Array;
 * slices holds the scan's items first..first+n-1, which must include every neighbour of from..to-1. */
async function probs({ slices, first, k, h, w, numbers, tta, from, to }) {
  const prep = settings.preprocessing, s = prep.image_size, c = prep.context_slices, channels = 2 * c + 1;
  const resized = new Map(), table = contextTable(numbers, c), held = slices.length / (h * w);
  const slice = (z) => {
    if (z < first || z >= first + held) throw new Error(`slice ${z} is not among the ${held} this worker was given from ${first} (of ${k})`);
    if (!resized.has(z)) resized.set(z, resizeArea(slices.subarray((z - first) * h * w, (z - first + 1) * h * w), h, w, s));
    return resized.get(z);
  };
  const out = new Float32Array((to - from) * s * s);
  for (let b = from; b < to; b += BATCH) {
    const n = Math.min(BATCH, to - b), input = new Float32Array(n * channels * s * s);
    for (let i = 0; i < n; i++) {
      table[b + i].forEach((item, ch) => normalizeInto(slice(item), prep.mean, prep.std, input, (i * channels + ch) * s * s));
    }
    (await probabilities(input, n, channels, s, tta)).forEach((p, i) => out.set(p, (b - from + i) * s * s));
    postMessage({ type: 'progress', done: n });
  }
  postMessage({ type: 'probs', probs: out }, [out.buffer]);
}

/** The masks of a whole scan from its slices' probabilities (k x s x s), at the slices' own size. */
function masks({ probs: all, k, h, w, numbers }) {
  const s = settings.preprocessing.image_size, post = settings.postprocess;
  const planes = Array.from({ length: k }, (_, z) => all.subarray(z * s * s, (z + 1) * s * s));
  subjectRegions(planes, numbers, s, settings.threshold, post.seed_threshold, post.largest_3d);
  const out = new Uint8Array(k * h * w);
  planes.forEach((prob, z) => {
    const sized = resizeLinear(prob, s, s, h, w), mask = new Uint8Array(h * w);
    for (let i = 0; i < mask.length; i++) mask[i] = sized[i] > settings.threshold ? 1 : 0;
    out.set(removeSmall(mask, h, w, post.min_size), z * h * w);
  });
  postMessage({ type: 'masks', masks: out }, [out.buffer]);
}

onmessage = async ({ data }) => {
  try {
    if (data.type === 'init') await init(data);
    else if (data.type === 'probs') await probs(data);
    else if (data.type === 'masks') masks(data);
  } catch (err) {
    postMessage({ type: 'error', message: String(err && err.message ? err.message : err) });
  }
};
