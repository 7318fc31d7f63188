// frame_bench.mjs: per-frame cost outside the network in the wasm product
// module (node, single thread, SIMD128) — the wasm twin of frame_bench.cc.
//
//   node --no-experimental-fetch tools/bench/frame_bench.mjs \
//       [--module build/h9-wasm/flawlens-core.mjs] [--model FILE.flawlens] [--runs N] [--cases SUBSTRING]
//
// 1. Preprocessing cases: a model file written here with the case's preprocess
//    config and a trivial network (4x4 avgpool + 1x1 conv), with the
//    postprocessing a trained model may use (sigmoid, map blur sigma 2, per-cell
//    calibration, top-k mean). Detect() reports preprocess / network /
//    postprocess ms itself; medians are printed.
// 2. With --model: Detect() of that model on a 640x480 RGBA frame, same split.
// Stage times are wall clock (from the C++ core); "process CPU" is
// process.cpuUsage() around detect() (includes the JS copy of the pixels into
// the wasm heap; steadier than wall clock on a loaded machine).
// Frames are the same deterministic pattern as frame_bench.cc.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { writeModel } from '../../tests/js/model_writer.mjs';
import { createEngine } from '../../web/js/engine.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const modulePath = path.resolve(opt('--module', path.join(here, '../../build/wasm-release/flawlens-core.mjs')));
const modelPath = opt('--model', null);
const runs = Math.max(1, Number(opt('--runs', 30)));
const only = opt('--cases', null);  // substring filter on case names

globalThis.__dirname = path.dirname(modulePath);
globalThis.require = createRequire(import.meta.url);
const engine = await createEngine({
  moduleUrl: pathToFileURL(modulePath).href,
  wasmBinary: fs.readFileSync(modulePath.replace(/\.mjs$/, '.wasm')),
});

const BPP = { gray: 1, rgb: 3, rgba: 4 };

// Same generator as MakeFrame() in frame_bench.cc.
function makeFrame(w, h, bpp) {
  const px = new Uint8Array(w * h * bpp);
  let seed = 777;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      const noise = (seed >>> 28) - 8;
      const fx = x / w, fy = y / h;
      const base = 90 + 60 * fx + 40 * Math.sin(fy * 9) + ((Math.floor(x / 37) + Math.floor(y / 29)) % 2 ? 30 : 0);
      for (let c = 0; c < bpp; c++) {
        const v = c === 3 ? 255 : Math.trunc(base + 15 * c * fy) + noise;
        px[(y * w + x) * bpp + c] = Math.min(255, Math.max(0, v));
      }
    }
  }
  return px;
}

function trivialModel(size, channels, norm) {
  const pool = 4, m = size / pool;
  const graph = {
    input: { h: size, w: size, c: channels },
    nodes: [
      { name: 'pool', op: 'avgpool2d', inputs: ['input'], kernel: [pool, pool], stride: [pool, pool] },
      { name: 'head', op: 'conv2d', inputs: ['pool'], out_channels: 1, kernel: [1, 1], stride: [1, 1],
        pad: [0, 0, 0, 0], weight: 'head.weight', bias: 'head.bias' },
    ],
    output: 'head',
  };
  const cells = m * m;
  return writeModel({
    graph,
    preprocess: {
      resize_w: size, resize_h: size, channels, scale: 1 / 255, norm,
      lcn_sigma: 8, lcn_eps: 1e-3, mean: [0, 0.01, 0.02].slice(0, channels), std: [0.7, 0.71, 0.72].slice(0, channels),
    },
    postprocess: { sigmoid: true, blur_sigma: 2, reduce: 'topk_mean', topk_fraction: 0.01, cell_mean: 'post.cell_mean', cell_std: 'post.cell_std' },
    calibration: { offset: 0.5, scale: 0.1, threshold: 3 },
    card: { name: `bench-${size}x${channels}-${norm}` },
    tensors: [
      { name: 'head.weight', shape: [1, 1, 1, channels], data: new Float32Array(channels).fill(1 / channels) },
      { name: 'head.bias', shape: [1], data: new Float32Array([0.1]) },
      { name: 'post.cell_mean', shape: [m, m], data: new Float32Array(cells).fill(0.4) },
      { name: 'post.cell_std', shape: [m, m], data: new Float32Array(cells).fill(0.05) },
    ],
  });
}

const median = (v) => {
  const s = [...v].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) >> 1] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
};

function time(det, w, h, format, n) {
  const px = makeFrame(w, h, BPP[format]);
  const t = { pre: [], net: [], post: [], total: [], cpu: [] };
  let r;
  for (let i = 0; i < n + 2; i++) {
    const c0 = process.cpuUsage();
    r = det.detect(px, w, h, format);
    const c1 = process.cpuUsage(c0);
    if (i < 2) continue;
    t.cpu.push((c1.user + c1.system) / 1000);
    t.pre.push(r.timings.preprocessMs);
    t.net.push(r.timings.networkMs);
    t.post.push(r.timings.postprocessMs);
    t.total.push(r.timings.totalMs);
  }
  return { pre: median(t.pre), net: median(t.net), post: median(t.post), total: median(t.total), cpu: median(t.cpu),
           cpuMin: Math.min(...t.cpu), score: r.score };
}

console.log(`frame_bench.mjs (${path.relative(process.cwd(), modulePath)}, wall clock, median of ${runs} runs)`);
const cases = [
  ['rgba640x480_to_256x3_lcn8', 640, 480, 'rgba', 256, 3, 'local_contrast'],
  ['rgba640x480_to_256x1_lcn8', 640, 480, 'rgba', 256, 1, 'local_contrast'],
  ['gray640x480_to_256x1_lcn8', 640, 480, 'gray', 256, 1, 'local_contrast'],
  ['rgba640x480_to_256x3_meanstd', 640, 480, 'rgba', 256, 3, 'mean_std'],
  ['rgba1280x720_to_256x3_lcn8', 1280, 720, 'rgba', 256, 3, 'local_contrast'],
  ['rgb4000x3000_to_224x3_meanstd', 4000, 3000, 'rgb', 224, 3, 'mean_std'],
];
for (const [name, w, h, format, size, channels, norm] of cases) {
  if (only && !name.includes(only)) continue;
  const det = engine.loadModel(trivialModel(size, channels, norm));
  const n = w * h > 4e6 ? Math.max(3, Math.round(runs / 5)) : runs;
  const t = time(det, w, h, format, n);
  det.dispose();
  console.log(`  ${name.padEnd(32)} preprocess ${t.pre.toFixed(2).padStart(7)} ms  postprocess ` +
              `${t.post.toFixed(3).padStart(6)} ms  CPU/detect() median ${t.cpu.toFixed(2).padStart(6)} min ${t.cpuMin.toFixed(2).padStart(6)} ms` +
              `  (score ${t.score.toFixed(5)})`);
}
if (modelPath) {
  const det = engine.loadModel(new Uint8Array(fs.readFileSync(modelPath)));
  const t = time(det, 640, 480, 'rgba', runs);
  det.dispose();
  console.log(`Detect 640x480 rgba, ${modelPath} (score ${t.score.toFixed(6)})`);
  console.log(`  preprocess ${t.pre.toFixed(2)} ms  network ${t.net.toFixed(2)} ms  postprocess ` +
              `${t.post.toFixed(3)} ms  total ${t.total.toFixed(2)} ms  CPU/detect() median ${t.cpu.toFixed(2)} min ${t.cpuMin.toFixed(2)} ms`);
}
