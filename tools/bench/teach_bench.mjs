#!/usr/bin/env node
// Teach benchmark (not a test): the wasm engine under node teaches a model
// from 640x480 RGBA frames, as the page's worker does (engine.mjs Teacher).
//
//   node --no-experimental-fetch tools/bench/teach_bench.mjs --model BACKBONE.safetensors
//        [--module build/wasm-release/flawlens-core.mjs] [--frames 100] [--width 640]
//        [--height 480] [--runs 3] [--dims 64]
//
// --model: a backbone file (tools/backbones/convert.sh OUT_DIR -> OUT_DIR/centernet.safetensors)
// or a model taught on one (`flawlens train --backbone centernet DATA --out M`,
// or a model taught in the page); a model without a backbone is refused with
// the engine's 'no_backbone' error.
// Per run: begin (createTeacher: load the backbone), add (every frame:
// frame checks + preprocessing + backbone + projection), fit (density,
// calibration, model file), load (the taught bytes as a detector, as the page
// does next) and teach = add + fit + load. One thread (the page's worker).
// Frames: a generated machined part (brushed texture, a bore, light drift,
// sensor noise) moving a little, different every frame.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const argv = process.argv.slice(2);
const arg = (n, d) => { const i = argv.indexOf(n); return i >= 0 && argv[i + 1] ? argv[i + 1] : d; };
const modulePath = path.resolve(arg('--module', path.join(repo, 'build', 'wasm-release', 'flawlens-core.mjs')));
const modelArg = arg('--model', null);
const frames = Number(arg('--frames', '100'));
const W = Number(arg('--width', '640')), H = Number(arg('--height', '480'));
const runs = Number(arg('--runs', '3'));
const dims = arg('--dims', null);
if (!modelArg) {
  console.error('teach_bench: --model BACKBONE.safetensors is required (tools/backbones/convert.sh OUT_DIR builds one)');
  process.exit(2);
}

globalThis.__dirname = path.dirname(modulePath);  // Emscripten 3.1.6's ES6 output on node
globalThis.require = createRequire(import.meta.url);
const { createEngine } = await import(pathToFileURL(path.join(repo, 'web/js/engine.mjs')).href);
const engine = await createEngine({
  moduleUrl: pathToFileURL(modulePath).href,
  wasmBinary: fs.readFileSync(modulePath.replace(/\.mjs$/, '.wasm')),
});
const model = new Uint8Array(fs.readFileSync(path.resolve(modelArg)));

// Deterministic pseudo-random numbers in [0, 1).
function rng(seed) {
  let a = seed | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function frame(i) {
  const r = rng(1000 + i);
  const dx = 6 * (r() - 0.5), dy = 6 * (r() - 0.5), light = 0.9 + 0.2 * r();
  const cx = W / 2 + dx, cy = H / 2 + dy, rad = Math.min(W, H) * 0.12;
  const px = new Uint8Array(W * H * 4);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const u = x - dx, v = y - dy;
      let g = 120 + 18 * Math.sin(0.9 * u + 0.05 * v) + 10 * Math.sin(0.031 * u * 7.3);
      const d = Math.hypot(x - cx, y - cy);
      if (d < rad) g = 45 + 20 * (d / rad);
      else if (d < rad + 4) g = 200;
      g = g * light * (0.85 + 0.15 * (x / W)) + 12 * (r() - 0.5);
      const k = (y * W + x) * 4;
      px[k] = Math.max(0, Math.min(255, g + 6));
      px[k + 1] = Math.max(0, Math.min(255, g));
      px[k + 2] = Math.max(0, Math.min(255, g - 6));
      px[k + 3] = 255;
    }
  }
  return px;
}

const t0 = performance.now();
const data = Array.from({ length: frames }, (_, i) => frame(i));
const genMs = performance.now() - t0;
const median = (a) => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; };
const f0 = (v) => v.toFixed(0);

console.log(`teach_bench: ${frames} frames of ${W}x${H} RGBA (generated in ${f0(genMs)} ms), model ${path.basename(modelArg)} ` +
            `(${model.length} bytes), module ${path.basename(modulePath)}, node ${process.version}`);
const rows = [];
for (let run = 0; run < runs; run++) {
  const a = performance.now();
  const t = engine.createTeacher(model, dims ? { dims: Number(dims) } : {});
  const b = performance.now();
  for (const px of data) t.addFrame(px, W, H, 'rgba');
  const c = performance.now();
  const r = t.fit({ name: 'bench' });
  const d = performance.now();
  const det = engine.loadModel(r.bytes);
  const e = performance.now();
  const probe = det.detect(data[0], W, H, 'rgba');
  const info = t.info;
  det.dispose();
  t.dispose();
  const row = { begin: b - a, add: c - b, fit: d - c, load: e - d, teach: e - b };
  rows.push(row);
  console.log(`run ${run + 1}: begin ${f0(row.begin)} ms, add ${f0(row.add)} ms (${(row.add / frames).toFixed(1)} ms/frame), ` +
              `fit ${f0(row.fit)} ms, load ${f0(row.load)} ms, teach ${f0(row.teach)} ms; map ${info.mapWidth}x${info.mapHeight}, ` +
              `D ${info.dims}, ${r.fitImages} fitted + ${r.holdoutImages} held out, model ${r.bytes.length} bytes, ` +
              `detect ${probe.timings.totalMs.toFixed(1)} ms (score ${probe.score.toFixed(2)}), heap ${engine.heapInUse} B`);
}
// The frame checks alone (blank / frozen): a black frame is refused after them,
// before any preprocessing.
{
  const t = engine.createTeacher(model, dims ? { dims: Number(dims) } : {});
  const black = new Uint8Array(W * H * 4);
  const a = performance.now();
  for (let i = 0; i < frames; i++) {
    try { t.addFrame(black, W, H, 'rgba'); } catch (e) { if (e.code !== 'black_frame') throw e; }
  }
  const ms = (performance.now() - a) / frames;
  t.dispose();
  console.log(`frame checks + copy into wasm memory: ${ms.toFixed(2)} ms per ${W}x${H} frame (a refused black frame)`);
}
const m = (k) => f0(median(rows.map((x) => x[k])));
console.log(`median of ${runs}: add ${m('add')} ms, fit ${m('fit')} ms, load ${m('load')} ms, ` +
            `teach (add + fit + load) ${m('teach')} ms for ${frames} frames (target <= 5000 ms)`);
