// Connected regions of masks, as tumorseg/inference/postprocess.py and tumorseg/scoring/volume_metrics.py count
// them: 26-connected in 3D (touching by a corner across neighbouring slices links), 8-connected in 2D.

/** Labels (Int32Array, 0 = background, 1..n) and n of the 26-connected regions of a k x h x w 0/1 array. */
export function label3d(mask, k, h, w) {
  const parent = [0], labels = new Int32Array(k * h * w);
  const find = (a) => { while (parent[a] !== a) { parent[a] = parent[parent[a]]; a = parent[a]; } return a; };
  const union = (a, b) => { a = find(a); b = find(b); if (a !== b) parent[Math.max(a, b)] = Math.min(a, b); };
  for (let z = 0; z < k; z++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const i = (z * h + y) * w + x;
    if (!mask[i]) continue;
    let own = 0;
    for (let dz = -1; dz <= 0; dz++) for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
      if (dz === 0 && (dy > 0 || (dy === 0 && dx >= 0))) continue;  // only neighbours already visited
      const zz = z + dz, yy = y + dy, xx = x + dx;
      if (zz < 0 || yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
      const other = labels[(zz * h + yy) * w + xx];
      if (other) { if (own) union(own, other); else own = other; }
    }
    if (!own) { own = parent.length; parent.push(own); }
    labels[i] = own;
  }
  const final = new Int32Array(parent.length);
  let n = 0;
  for (let a = 1; a < parent.length; a++) { const r = find(a); final[a] = r === a ? ++n : final[r]; }
  for (let i = 0; i < labels.length; i++) if (labels[i]) labels[i] = final[labels[i]];
  return { labels, n };
}

/** Positions grouped into runs of consecutive slice indices (K, K+1, ...); an unnumbered slice stands alone. */
export function runsOfSlices(numbers) {
  const runs = [];
  numbers.forEach((n, i) => { if (n === null) runs.push([i]); });
  const numbered = numbers.map((n, i) => [n, i]).filter(([n]) => n !== null).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  numbered.forEach(([n, i], j) => {
    if (j && n === numbered[j - 1][0] + 1) runs[runs.length - 1].push(i); else runs.push([i]);
  });
  return runs;
}

/** The slices of a run as one k x s x s array (probs: one Float32Array per slice). */
function stack(probs, run, s2) {
  const out = new Float32Array(run.length * s2);
  run.forEach((p, j) => out.set(probs[p], j * s2));
  return out;
}

/** One subject's probabilities (one s x s Float32Array per slice) after the 3D steps: regions above threshold
 * without a pixel above seed dropped (seed > threshold), then all but the largest region (largest). In place. */
export function subjectRegions(probs, numbers, s, threshold, seed, largest) {
  const s2 = s * s, runs = runsOfSlices(numbers);
  if (seed > threshold) {
    for (const run of runs) {
      const st = stack(probs, run, s2), { labels, n } = label3d(st.map((v) => v > threshold), run.length, s, s);
      const seeded = new Uint8Array(n + 1);
      for (let i = 0; i < st.length; i++) if (st[i] > seed) seeded[labels[i]] = 1;
      seeded[0] = 0;
      run.forEach((p, j) => { for (let i = 0; i < s2; i++) if (!seeded[labels[j * s2 + i]]) probs[p][i] = 0; });
    }
  }
  if (largest) {
    let best = null, bestSize = 0;
    for (const run of runs) {
      const { labels, n } = label3d(stack(probs, run, s2).map((v) => v > threshold), run.length, s, s);
      const sizes = new Int32Array(n + 1);
      for (const l of labels) sizes[l]++;
      for (let l = 1; l <= n; l++) if (sizes[l] > bestSize) { bestSize = sizes[l]; best = { run, labels, l }; }
    }
    const keep = new Set(best ? best.run : []);
    probs.forEach((prob, p) => {
      const j = best ? best.run.indexOf(p) : -1;
      for (let i = 0; i < s2; i++) if (!keep.has(p) || best.labels[j * s2 + i] !== best.l) prob[i] = 0;
    });
  }
  return probs;
}

/** A 0/1 h x w mask without its 8-connected components smaller than minSize pixels. */
export function removeSmall(mask, h, w, minSize) {
  if (minSize <= 1) return mask;
  const { labels, n } = label3d(mask, 1, h, w);
  const sizes = new Int32Array(n + 1);
  for (const l of labels) sizes[l]++;
  return mask.map((v, i) => (v && sizes[labels[i]] >= minSize ? 1 : 0));
}

/** Tumour figures of a k x h x w mask (as tumorseg.scoring.volume_metrics.volume_figures): voxels, mL, 3D
 * components, the largest one's mL, the first and last slice holding tumour. */
export function volumeFigures(mask, k, h, w, voxelMl) {
  const { labels, n } = label3d(mask, k, h, w);
  const sizes = new Int32Array(n + 1);
  let first = null, last = null;
  for (let i = 0; i < labels.length; i++) {
    if (!labels[i]) continue;
    sizes[labels[i]]++;
    const z = Math.floor(i / (h * w));
    if (first === null) first = z;
    last = z;
  }
  let voxels = 0, biggest = 0;
  for (let l = 1; l <= n; l++) { voxels += sizes[l]; biggest = Math.max(biggest, sizes[l]); }
  return { tumorVoxels: voxels, tumorMl: voxels * voxelMl, components: n, largestMl: biggest * voxelMl,
    firstSlice: first, lastSlice: last };
}
