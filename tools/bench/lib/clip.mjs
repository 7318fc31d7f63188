// Build a fake-webcam clip (.y4m) from image files: each image is held for
// `hold` frames, in the order given. The clip has the first image's size (the
// longer side at most `maxSide`), or width x height when both are given
// (every image stretched to it).
import fs from 'node:fs';
import { decodePng } from './png.mjs';
import { writeY4m, resizeRgba } from './y4m.mjs';

export function clipFromImages(file, images, { hold = 10, fps = 10, maxSide = 480, width: w = 0, height: h = 0 } = {}) {
  let decoded = images.map((f) => decodePng(fs.readFileSync(f)));
  const w0 = decoded[0].width, h0 = decoded[0].height;
  const s = Math.min(1, maxSide / Math.max(w0, h0));
  const width = w && h ? w : Math.max(2, Math.round((w0 * s) / 2) * 2);
  const height = w && h ? h : Math.max(2, Math.round((h0 * s) / 2) * 2);
  // Once per image, not once per frame.
  decoded = decoded.map((d) => (d.width === width && d.height === height ? d
    : { width, height, rgba: resizeRgba(d.rgba, d.width, d.height, width, height) }));
  const frames = [];
  for (const d of decoded) for (let i = 0; i < hold; ++i) frames.push(d);
  writeY4m(file, frames, { width, height, fps });
  const signatures = decoded.map((d) => signature(d.rgba, width, height));
  return { width, height, frames: frames.length, seconds: frames.length / fps, signatures };
}

// 4x4 grid of mean luma: tells the clip's images apart in a captured video frame.
export function signature(rgba, w, h) {
  const sig = new Array(16).fill(0), n = new Array(16).fill(0);
  for (let y = 0; y < h; ++y) {
    for (let x = 0; x < w; ++x) {
      const i = (y * w + x) * 4, k = Math.min(3, Math.floor((y * 4) / h)) * 4 + Math.min(3, Math.floor((x * 4) / w));
      sig[k] += 0.299 * rgba[i] + 0.587 * rgba[i + 1] + 0.114 * rgba[i + 2];
      n[k] += 1;
    }
  }
  return sig.map((v, k) => v / n[k]);
}

// Index of the nearest signature.
export function nearest(sig, signatures) {
  let best = -1, bestD = Infinity;
  signatures.forEach((s, i) => {
    const d = s.reduce((acc, v, k) => acc + (v - sig[k]) ** 2, 0);
    if (d < bestD) { bestD = d; best = i; }
  });
  return best;
}
