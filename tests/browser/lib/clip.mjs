// Build a fake-webcam clip (.y4m) from image files: each image is held for
// `hold` frames, in the order given.
import fs from 'node:fs';
import { decodePng } from './png.mjs';
import { writeY4m } from './y4m.mjs';

export function clipFromImages(file, images, { hold = 10, fps = 10, maxSide = 480 } = {}) {
  const decoded = images.map((f) => decodePng(fs.readFileSync(f)));
  const w0 = decoded[0].width, h0 = decoded[0].height;
  const s = Math.min(1, maxSide / Math.max(w0, h0));
  const width = Math.max(2, Math.round((w0 * s) / 2) * 2), height = Math.max(2, Math.round((h0 * s) / 2) * 2);
  const frames = [];
  for (const d of decoded) for (let i = 0; i < hold; ++i) frames.push(d);
  writeY4m(file, frames, { width, height, fps });
  return { width, height, frames: frames.length, seconds: frames.length / fps };
}
