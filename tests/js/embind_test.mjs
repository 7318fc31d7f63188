// JS test of the wasm module's public API (web/js/engine.mjs over Embind), in node.
//   node --no-experimental-fetch tests/js/embind_test.mjs build/wasm-release/flawlens-core.mjs
//   node --no-experimental-fetch tests/js/embind_test.mjs build/wasm-release/flawlens-core-mt.mjs [THREADS]
// The threaded module (flawlens-core-mt) runs every test with THREADS threads
// (default 2), with models big enough that the executor splits their ops
// into row bands where a test is about running many frames.
// Checks: the seed CNN's output against an independent JS forward pass, the
// preprocessing path end to end, every error becoming a FlawlensError with its
// code (the previous model staying usable), dispose(), and 10,000 frames with
// the wasm heap flat. The Teacher: teach on generated frames, the bytes load as
// a detector that flags a defect and passes good frames, its frame / fit
// errors, and the heap flat over repeated teach cycles.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { after, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { createEngine, FlawlensError, simdSupported } from '../../web/js/engine.mjs';
import { uniform, writeModel } from '../../tools/bench/lib/model_writer.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const modulePath = path.resolve(process.argv[2] ?? path.join(here, '../../build/wasm-release/flawlens-core.mjs'));
const wasmBinary = fs.readFileSync(modulePath.replace(/\.mjs$/, '.wasm'));
// Emscripten 3.1.6's ES6 output uses CommonJS globals on node (browsers need nothing).
globalThis.__dirname = path.dirname(modulePath);
globalThis.require = createRequire(import.meta.url);
const threaded = /-mt\.mjs$/.test(modulePath);
const threads = threaded ? Number(process.argv[3] ?? 2) : null;
const engine = await createEngine({ moduleUrl: pathToFileURL(modulePath).href, wasmBinary, threads });
after(() => engine.close());  // the threaded module's workers would keep node running

// ---- the seed CNN with the seed's preprocessing (resize 64, crop 16..48, /255)
function seedCnn() {
  const convs = [
    { name: 'conv1', cin: 3, cout: 32 },
    { name: 'conv2', cin: 32, cout: 64 },
  ];
  const t = {};
  convs.forEach((c, i) => {
    t[c.name] = { w: uniform(c.cout * 9 * c.cin, Math.sqrt(6 / (9 * c.cin)), 11 + i), b: uniform(c.cout, 0.1, 21 + i) };
  });
  t.fc1 = { w: uniform(128 * 2304, Math.sqrt(6 / 2304), 31), b: uniform(128, 0.1, 32) };
  t.fc2 = { w: uniform(128, Math.sqrt(3 / 128), 41), b: uniform(1, 0.1, 42) };
  const conv = (name, input, cout) => ({
    name, op: 'conv2d', inputs: [input], out_channels: cout, kernel: [3, 3], stride: [1, 1], pad: [0, 0, 0, 0],
    activation: 'relu', weight: `${name}.weight`, bias: `${name}.bias`,
  });
  const graph = {
    input: { h: 32, w: 32, c: 3 },
    nodes: [
      conv('conv1', 'input', 32),
      { name: 'pool1', op: 'maxpool2d', inputs: ['conv1'], kernel: [2, 2], stride: [2, 2] },
      conv('conv2', 'pool1', 64),
      { name: 'pool2', op: 'maxpool2d', inputs: ['conv2'], kernel: [2, 2], stride: [2, 2] },
      { name: 'fc1', op: 'dense', inputs: ['pool2'], out_channels: 128, activation: 'relu', weight: 'fc1.weight', bias: 'fc1.bias' },
      { name: 'fc2', op: 'dense', inputs: ['fc1'], out_channels: 1, activation: 'sigmoid', weight: 'fc2.weight', bias: 'fc2.bias' },
    ],
    output: 'fc2',
  };
  const bytes = writeModel({
    graph,
    preprocess: { resize_w: 64, resize_h: 64, crop: { x: 16, y: 16, w: 32, h: 32 }, channels: 3, scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] },
    postprocess: { reduce: 'max' },
    calibration: { offset: 0.5, scale: 0.25, threshold: 1.0 },
    card: { name: 'seed-cnn-test', created: '2026-11-29T00:00:00Z' },
    tensors: [
      { name: 'conv1.weight', shape: [32, 3, 3, 3], data: t.conv1.w }, { name: 'conv1.bias', shape: [32], data: t.conv1.b },
      { name: 'conv2.weight', shape: [64, 3, 3, 32], data: t.conv2.w }, { name: 'conv2.bias', shape: [64], data: t.conv2.b },
      { name: 'fc1.weight', shape: [128, 2304], data: t.fc1.w }, { name: 'fc1.bias', shape: [128], data: t.fc1.b },
      { name: 'fc2.weight', shape: [1, 128], data: t.fc2.w }, { name: 'fc2.bias', shape: [1], data: t.fc2.b },
    ],
  });
  return { bytes, t };
}

// Independent forward pass (float64), NHWC, OHWI weights.
function seedForward(t, x) {
  const conv = (inp, H, W, C, w, b, O) => {
    const oh = H - 2, ow = W - 2, out = new Float64Array(oh * ow * O);
    for (let y = 0; y < oh; y++) for (let xx = 0; xx < ow; xx++) for (let o = 0; o < O; o++) {
      let s = b[o];
      for (let ky = 0; ky < 3; ky++) for (let kx = 0; kx < 3; kx++) for (let c = 0; c < C; c++) {
        s += inp[((y + ky) * W + xx + kx) * C + c] * w[((o * 3 + ky) * 3 + kx) * C + c];
      }
      out[(y * ow + xx) * O + o] = Math.max(0, s);
    }
    return out;
  };
  const pool = (inp, H, W, C) => {
    const oh = Math.floor(H / 2), ow = Math.floor(W / 2), out = new Float64Array(oh * ow * C);
    for (let y = 0; y < oh; y++) for (let xx = 0; xx < ow; xx++) for (let c = 0; c < C; c++) {
      let m = -Infinity;
      for (let dy = 0; dy < 2; dy++) for (let dx = 0; dx < 2; dx++) m = Math.max(m, inp[((2 * y + dy) * W + 2 * xx + dx) * C + c]);
      out[(y * ow + xx) * C + c] = m;
    }
    return out;
  };
  const dense = (inp, w, b, O, act) => {
    const out = new Float64Array(O);
    for (let o = 0; o < O; o++) {
      let s = b[o];
      for (let i = 0; i < inp.length; i++) s += inp[i] * w[o * inp.length + i];
      out[o] = act(s);
    }
    return out;
  };
  let h = conv(x, 32, 32, 3, t.conv1.w, t.conv1.b, 32);
  h = pool(h, 30, 30, 32);
  h = conv(h, 15, 15, 32, t.conv2.w, t.conv2.b, 64);
  h = pool(h, 13, 13, 64);
  h = dense(h, t.fc1.w, t.fc1.b, 128, (s) => Math.max(0, s));
  return dense(h, t.fc2.w, t.fc2.b, 1, (s) => 1 / (1 + Math.exp(-s)))[0];
}

// A small fully convolutional model with a 16x16 map, blur and top-k score.
function fcnModel() {
  const w1 = uniform(8 * 9 * 3, 0.4, 5), b1 = uniform(8, 0.1, 6), w2 = uniform(8, 0.5, 7), b2 = uniform(1, 0.1, 8);
  return writeModel({
    graph: {
      input: { h: 32, w: 32, c: 3 },
      nodes: [
        { name: 'enc', op: 'conv2d', inputs: ['input'], out_channels: 8, kernel: [3, 3], stride: [2, 2], pad: [1, 1, 0, 0], activation: 'relu', weight: 'enc.weight', bias: 'enc.bias' },
        { name: 'head', op: 'conv2d', inputs: ['enc'], out_channels: 1, kernel: [1, 1], weight: 'head.weight', bias: 'head.bias' },
      ],
      output: 'head',
    },
    preprocess: { resize_w: 32, resize_h: 32, channels: 3, scale: 1 / 255, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
    postprocess: { sigmoid: true, blur_sigma: 1.0, reduce: 'topk_mean', topk_fraction: 0.05 },
    calibration: { offset: 0.5, scale: 0.1, threshold: 2.0, map_low: 0, map_high: 4 },
    card: { name: 'fcn-test' },
    tensors: [
      { name: 'enc.weight', shape: [8, 3, 3, 3], data: w1 }, { name: 'enc.bias', shape: [8], data: b1 },
      { name: 'head.weight', shape: [1, 1, 1, 8], data: w2 }, { name: 'head.bias', shape: [1], data: b2 },
    ],
  });
}

// Big enough for the executor to split its convolutions into row bands on
// 2+ threads (each band well over ExecutorOptions::min_band_work MACs):
// 64x64x3 -> conv 3x3 (16, relu; 1.8 M MACs) -> conv 3x3 (8, relu; 4.7 M) -> 1x1 -> a 64x64 map.
function bandModel() {
  const w1 = uniform(16 * 9 * 3, 0.4, 71), b1 = uniform(16, 0.1, 72), w2 = uniform(8 * 9 * 16, 0.15, 73);
  const b2 = uniform(8, 0.1, 74), w3 = uniform(8, 0.5, 75), b3 = uniform(1, 0.1, 76);
  const conv = (name, input, cout, k) => ({
    name, op: 'conv2d', inputs: [input], out_channels: cout, kernel: [k, k], stride: [1, 1],
    pad: k === 3 ? [1, 1, 1, 1] : [0, 0, 0, 0], activation: k === 3 ? 'relu' : 'none',
    weight: `${name}.weight`, bias: `${name}.bias`,
  });
  return writeModel({
    graph: { input: { h: 64, w: 64, c: 3 }, nodes: [conv('c1', 'input', 16, 3), conv('c2', 'c1', 8, 3), conv('head', 'c2', 1, 1)], output: 'head' },
    preprocess: { resize_w: 64, resize_h: 64, channels: 3, scale: 1 / 255, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
    postprocess: { sigmoid: true, reduce: 'topk_mean', topk_fraction: 0.05 },
    calibration: { offset: 0.5, scale: 0.1, threshold: 2.0, map_low: 0, map_high: 4 },
    card: { name: 'band-test' },
    tensors: [
      { name: 'c1.weight', shape: [16, 3, 3, 3], data: w1 }, { name: 'c1.bias', shape: [16], data: b1 },
      { name: 'c2.weight', shape: [8, 3, 3, 16], data: w2 }, { name: 'c2.bias', shape: [8], data: b2 },
      { name: 'head.weight', shape: [1, 1, 1, 8], data: w3 }, { name: 'head.bias', shape: [1], data: b3 },
    ],
  });
}

const seed = seedCnn();

test('SIMD is detected in node', () => {
  assert.equal(simdSupported(), true);
});

test('the module runs the threads it was asked for (1 in the single-thread module)', () => {
  assert.equal(engine.threaded, threaded);
  assert.equal(engine.threads, threaded ? threads : 1);
  if (!threaded) {
    assert.throws(() => engine.setThreads(2), (e) => e instanceof FlawlensError && e.code === 'unsupported');
    assert.equal(engine.setThreads(1), 1);
  }
  assert.throws(() => engine.setThreads(0), (e) => e instanceof FlawlensError && e.code === 'invalid_argument');
  assert.equal(engine.threads, threaded ? threads : 1, 'a refused count changes nothing');
});

test('the Embind Detector class names its methods in camelCase, as engine.mjs calls them', async () => {
  const module = await (await import(pathToFileURL(modulePath).href)).default({ wasmBinary });
  const own = Object.getOwnPropertyNames(module.Detector.prototype)
    .filter((k) => k !== 'constructor' && typeof module.Detector.prototype[k] === 'function');
  const bound = ['buffer', 'releaseBytes', 'load', 'loaded', 'info', 'detect', 'detectEncoded', 'stats',
                 'map', 'threshold', 'setThreshold', 'resetThreshold', 'falseAlarmRate', 'thresholdForScores',
                 'lastError', 'floats', 'runNetwork', 'output'];
  for (const name of bound) assert.ok(own.includes(name), `Detector.${name} is bound`);
  // Embind adds its own helpers (delete, clone, isAliasOf, ...): camelCase too.
  const notCamel = own.filter((k) => !/^[a-z][A-Za-z0-9]*$/.test(k));
  assert.deepEqual(notCamel, [], 'every method name is camelCase');
  const teacherOwn = Object.getOwnPropertyNames(module.Teacher.prototype)
    .filter((k) => k !== 'constructor' && typeof module.Teacher.prototype[k] === 'function');
  for (const name of ['buffer', 'releaseBytes', 'begin', 'ready', 'info', 'addFrame', 'images',
                      'fit', 'model', 'releaseModel', 'result']) {
    assert.ok(teacherOwn.includes(name), `Teacher.${name} is bound`);
  }
  assert.deepEqual(teacherOwn.filter((k) => !/^[a-z][A-Za-z0-9]*$/.test(k)), [], 'every Teacher method is camelCase');
  module.PThread?.terminateAllThreads();
});

test('seed CNN: info, runNetwork matches an independent JS forward pass', () => {
  const det = engine.loadModel(seed.bytes);
  try {
    assert.equal(det.info.name, 'seed-cnn-test');
    assert.equal(det.info.inputWidth, 32);
    assert.equal(det.info.inputHeight, 32);
    assert.equal(det.info.inputChannels, 3);
    assert.equal(det.info.mapWidth, 1);
    assert.equal(det.info.card.created, '2026-11-29T00:00:00Z');
    assert.equal(det.info.macs, 30 * 30 * 32 * 27 + 13 * 13 * 64 * 288 + 2304 * 128 + 128);
    for (let k = 0; k < 3; k++) {
      const x = uniform(32 * 32 * 3, 1, 100 + k).map((v) => (v + 1) / 2);
      const got = det.runNetwork(x)[0];
      const want = seedForward(seed.t, x);
      assert.ok(Math.abs(got - want) < 1e-5, `output ${got} vs reference ${want}`);
    }
  } finally {
    det.dispose();
  }
});

test('seed CNN: detect() runs the seed preprocessing (crop 16..48 of a 64x64 resize, /255)', () => {
  const det = engine.loadModel(seed.bytes);
  try {
    // 128x128 RGBA: the centre 64x64 (what the crop keeps after resizing to 64) is
    // one colour, the border another: the score must depend only on the centre.
    const make = (border) => {
      const px = new Uint8Array(128 * 128 * 4);
      for (let y = 0; y < 128; y++) for (let x = 0; x < 128; x++) {
        const inside = x >= 32 && x < 96 && y >= 32 && y < 96;
        const i = (y * 128 + x) * 4;
        px.set(inside ? [200, 100, 50, 255] : [border, border, border, 255], i);
      }
      return px;
    };
    const a = det.detect(make(0), 128, 128, 'rgba');
    const b = det.detect(make(255), 128, 128, 'rgba');
    const x = new Float32Array(32 * 32 * 3);
    for (let i = 0; i < 32 * 32; i++) x.set([200 / 255, 100 / 255, 50 / 255], 3 * i);
    const want = seedForward(seed.t, x);
    assert.ok(Math.abs(a.rawScore - want) < 1e-5, `${a.rawScore} vs ${want}`);
    assert.ok(Math.abs(b.rawScore - want) < 1e-5, `${b.rawScore} vs ${want}`);
    assert.ok(Math.abs(a.score - (want - 0.5) / 0.25) < 1e-4);
    assert.equal(a.anomalous, a.score >= 1.0);
    assert.deepEqual(a.mapRect, { x: 32, y: 32, w: 64, h: 64 });
    for (const k of ['preprocessMs', 'networkMs', 'postprocessMs', 'totalMs']) assert.ok(a.timings[k] >= 0);
  } finally {
    det.dispose();
  }
});

test('map model: map size, rgb/gray/rgba agree on a gray image, roi, threshold', () => {
  const det = engine.loadModel(fcnModel());
  try {
    assert.equal(det.info.mapWidth, 16);
    const w = 40, h = 30;
    const gray = new Uint8Array(w * h), rgb = new Uint8Array(w * h * 3), rgba = new Uint8Array(w * h * 4);
    for (let i = 0; i < w * h; i++) {
      const g = (i * 37) % 256;
      gray[i] = g; rgb.set([g, g, g], 3 * i); rgba.set([g, g, g, 255], 4 * i);
    }
    const r1 = det.detect(gray, w, h, 'gray');
    const r2 = det.detect(rgb, w, h, 'rgb');
    const r3 = det.detect(rgba, w, h, 'rgba');
    assert.equal(r1.map.length, 256);
    assert.ok(Math.abs(r1.score - r2.score) < 1e-4 && Math.abs(r2.score - r3.score) < 1e-4);
    assert.equal(r1.mapLow, 0);
    assert.equal(r1.mapHigh, 4);
    const topk = [...r1.map].sort((p, q) => q - p).slice(0, Math.ceil(0.05 * 256));
    const mean = topk.reduce((s, v) => s + v, 0) / topk.length;
    assert.ok(Math.abs(mean - r1.score) < 1e-4, 'score = top-5% mean of the normalised map');
    const roi = det.detect(rgba, w, h, 'rgba', { x: 10, y: 5, w: 20, h: 20 });
    assert.deepEqual(roi.mapRect, { x: 10, y: 5, w: 20, h: 20 });
    assert.equal(det.threshold, 2);
    det.threshold = r3.score - 1;
    assert.equal(det.detect(rgba, w, h, 'rgba').anomalous, true);
    det.threshold = r3.score + 1;
    assert.equal(det.detect(rgba, w, h, 'rgba').anomalous, false);
    det.resetThreshold();
    assert.equal(det.threshold, 2);
  } finally {
    det.dispose();
  }
});

test('errors become FlawlensError with a code and leave the previous model usable', () => {
  const det = engine.loadModel(seed.bytes);
  try {
    const x = uniform(32 * 32 * 3, 1, 7);
    const before = det.runNetwork(x)[0];
    const expectError = (fn, code) => {
      assert.throws(fn, (e) => e instanceof FlawlensError && e.code === code && e.message.length > 10,
        `expected FlawlensError ${code}`);
    };
    expectError(() => engine.loadModel(new TextEncoder().encode('this is not a model file at all')), 'bad_magic');
    expectError(() => engine.loadModel(seed.bytes.subarray(0, 100)), 'truncated');
    expectError(() => engine.loadModel(new Uint8Array(0)), 'invalid_argument');
    const bad = seed.bytes.slice();
    new DataView(bad.buffer).setFloat32(bad.length - 4, NaN, true);  // last weight of the last tensor
    expectError(() => engine.loadModel(bad), 'non_finite');
    expectError(() => det.detectEncoded(new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3, 4, 5])), 'bad_image');
    expectError(() => det.detect(new Uint8Array(10), 64, 64, 'rgba'), 'invalid_argument');
    expectError(() => det.detect(new Uint8Array(16), 2, 2, 'bgr'), 'invalid_argument');
    assert.equal(det.runNetwork(x)[0], before, 'the loaded model is unaffected by failed calls');
  } finally {
    det.dispose();
  }
  assert.throws(() => det.detect(new Uint8Array(4), 1, 1), FlawlensError, 'use after dispose');
});

test('threads: a detector loaded with N threads gives the same scores and maps as with 1', { skip: !threaded }, () => {
  const w = 200, h = 150;
  const frame = new Uint8Array(w * h * 4);
  for (let i = 0; i < frame.length; i++) frame[i] = (i * 97 + (i >> 9)) % 253;
  const run = (n) => {
    engine.setThreads(n);
    const det = engine.loadModel(bandModel());
    try {
      return det.detect(frame, w, h, 'rgba');
    } finally {
      det.dispose();
    }
  };
  const one = run(1);
  const many = run(threads);
  assert.equal(engine.threads, threads);
  assert.equal(many.score, one.score);
  assert.equal(many.map.length, 64 * 64);
  assert.deepEqual(many.map, one.map, 'the same map bit for bit');
});

test('10,000 frames: the wasm heap stays flat', () => {
  // Threaded: a model whose ops run in row bands on the pool's threads.
  const det = engine.loadModel(threaded ? bandModel() : fcnModel());
  try {
    const w = 320, h = 240;
    const frame = new Uint8Array(w * h * 4);
    for (let i = 0; i < frame.length; i++) frame[i] = (i * 131) % 251;
    for (let i = 0; i < 100; i++) det.detect(frame, w, h, 'rgba');
    const start = engine.memoryBytes;
    const startHeap = engine.heapInUse;
    let last;
    for (let i = 0; i < 10000; i++) {
      frame[(i * 4099) % frame.length] ^= 0x55;  // frames differ
      last = det.detect(frame, w, h, 'rgba');
    }
    assert.ok(Number.isFinite(last.score));
    assert.equal(engine.memoryBytes, start, `wasm memory grew from ${start} to ${engine.memoryBytes} bytes`);
    assert.equal(engine.heapInUse, startHeap, `malloc'd bytes grew from ${startHeap} to ${engine.heapInUse}`);
  } finally {
    det.dispose();
  }
});

// ---- Teacher ------------------------------------------------------------------

// A tiny backbone (like tests/unit/fit_test.cc's): 64x64 gray -> conv 3x3/2 (8,
// relu) -> conv 3x3/2 (16, relu) = a 16x16x16 feature map.
function tinyBackbone(card = { kind: 'backbone', name: 'tiny', licence: 'test' }) {
  const conv = (name, input, cin, cout, seed) => ({
    node: { name, op: 'conv2d', inputs: [input], out_channels: cout, kernel: [3, 3], stride: [2, 2], pad: [1, 1, 1, 1],
            activation: 'relu', weight: `${name}.weight`, bias: `${name}.bias` },
    tensors: [{ name: `${name}.weight`, shape: [cout, 3, 3, cin], data: uniform(cout * 9 * cin, Math.sqrt(6 / (9 * cin)), seed) },
              { name: `${name}.bias`, shape: [cout], data: uniform(cout, 0.1, seed + 1) }],
  });
  const c1 = conv('c1', 'input', 1, 8, 51), c2 = conv('c2', 'c1', 8, 16, 61);
  return writeModel({
    graph: { input: { h: 64, w: 64, c: 1 }, nodes: [c1.node, c2.node], output: 'c2' },
    preprocess: { resize_w: 64, resize_h: 64, channels: 1, scale: 1 / 255, mean: [0.5], std: [0.25] },
    card,
    tensors: [...c1.tensors, ...c2.tensors],
  });
}

const FW = 160, FH = 120;

// A camera frame of a good part: stripes with a random phase, contrast and noise.
function goodFrame(seed) {
  const r = uniform(FW * FH + 2, 1, seed);
  const phase = Math.PI * (r[0] + 1) / 2, amp = 30 + 5 * r[1];
  const px = new Uint8Array(FW * FH * 4);
  for (let y = 0; y < FH; y++) {
    for (let x = 0; x < FW; x++) {
      const v = 128 + amp * Math.sin(0.14 * x + 0.1 * y + phase) + 8 * r[2 + y * FW + x];
      const i = (y * FW + x) * 4;
      px[i] = px[i + 1] = px[i + 2] = Math.max(0, Math.min(255, Math.round(v)));
      px[i + 3] = 255;
    }
  }
  return px;
}

// A bright 25x25 square at (100, 40).
function withDefect(px) {
  const out = px.slice();
  for (let y = 40; y < 65; y++) {
    for (let x = 100; x < 125; x++) out.fill(250, (y * FW + x) * 4, (y * FW + x) * 4 + 3);
  }
  return out;
}

function codeOf(fn) {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof FlawlensError, `a FlawlensError, got ${e}`);
    return e.code;
  }
  return null;
}

test('Teacher: a taught model loads as a detector, flags a defect and passes good frames', () => {
  const t = engine.createTeacher(tinyBackbone(), { dims: 8, seed: 3 });
  let det = null;
  try {
    assert.equal(t.info.mapWidth, 16);
    assert.equal(t.info.mapHeight, 16);
    assert.deepEqual(t.info.backbone, { name: 'tiny', licence: 'test' });
    for (let i = 0; i < 40; i++) {
      const r = t.addFrame(goodFrame(1000 + i), FW, FH);
      assert.equal(r.images, i + 1);
    }
    const progress = [];
    const card = { taught: { where: 'browser', source: 'camera', frames: 40, created: '2026-12-02T16:40:00Z' },
                   roi: { x: 0.1, y: 0.2, w: 0.5, h: 0.5 } };
    const r = t.fit({ name: 'parts', created: '2026-12-02T16:40:00Z', card }, (f) => progress.push(f));
    assert.ok(r.bytes instanceof Uint8Array && r.bytes.length > 0);
    // Camera frames: five contiguous time blocks, each scored by a model
    // fitted on the other four; all 40 scores set the threshold.
    assert.equal(r.images, 40);
    assert.equal(r.groups, 5);
    assert.equal(r.calibration.goodImages, 40);
    assert.ok(Math.abs(r.calibration.falseAlarmRate - 0.05) < 1e-6, 'the default target');
    assert.ok(r.calibration.threshold > 0 && r.calibration.scale > 0);
    assert.ok(Array.isArray(r.warnings));
    assert.ok(progress.length > 0 && progress.at(-1) === 1, 'progress ends at 1');
    for (let i = 1; i < progress.length; i++) assert.ok(progress[i] >= progress[i - 1], 'progress never goes back');

    det = engine.loadModel(r.bytes);
    assert.equal(det.info.name, 'parts');
    assert.equal(det.info.card.taught.where, 'browser');
    assert.equal(det.info.card.taught.frames, 40);
    assert.deepEqual(det.info.card.roi, card.roi);
    assert.equal(det.threshold, r.calibration.threshold);
    // The threshold's meaning, by the C++ rule: about the target at the
    // model's threshold, more below it.
    assert.ok(Math.abs(det.info.falseAlarmRate - 0.05) < 1e-6);
    assert.equal(det.info.goodImages, 40);
    const atThreshold = det.falseAlarmRate(det.threshold);
    assert.ok(atThreshold > 0 && atThreshold <= 0.1, `estimated rate at the threshold: ${atThreshold}`);
    assert.ok(det.falseAlarmRate(det.threshold - 2) > atThreshold, 'a lower threshold flags more');
    assert.equal(det.describeRate(0.02), 'about 1 in 50 good parts');
    assert.equal(det.info.falseAlarmWords, 'about 1 in 20 good parts', 'the words of the model\'s own target');
    // "Calibrate here": the same rule on scores of good frames.
    const scores = Array.from({ length: 200 }, (_, i) => i / 100);
    const cal = det.thresholdForScores(scores, 0.05);
    assert.equal(cal.frames, 200);
    assert.ok(cal.threshold >= 2.49, `at least half a unit above the highest frame: ${cal.threshold}`);
    assert.equal(codeOf(() => det.thresholdForScores([1], 0.05)), 'invalid_argument');
    assert.equal(codeOf(() => det.thresholdForScores([1, NaN], 0.05)), 'non_finite');
    let maxGood = -Infinity, falseAlarms = 0;
    for (let i = 0; i < 10; i++) {
      const g = det.detect(goodFrame(5000 + i), FW, FH);
      maxGood = Math.max(maxGood, g.score);
      falseAlarms += g.anomalous ? 1 : 0;
    }
    assert.ok(falseAlarms <= 1, `good frames over the threshold: ${falseAlarms} (max ${maxGood})`);
    for (let i = 0; i < 4; i++) {
      const d = det.detect(withDefect(goodFrame(6000 + i)), FW, FH);
      assert.ok(d.anomalous, `defect ${i} scored ${d.score}, threshold ${d.threshold}`);
      assert.ok(d.score > maxGood, `defect ${i} scored ${d.score}, good max ${maxGood}`);
    }
    // A taught model can be taught again (its card names the feature node).
    const again = engine.createTeacher(r.bytes);
    assert.deepEqual(again.info.backbone, { name: 'tiny', licence: 'test' });
    again.dispose();
  } finally {
    t.dispose();
    det?.dispose();
  }
  assert.throws(() => t.addFrame(goodFrame(1), FW, FH), FlawlensError, 'use after dispose');
});

test('Teacher: a model without a backbone, blank / frozen frames, too few and identical frames', () => {
  assert.equal(codeOf(() => engine.createTeacher(seed.bytes)), 'no_backbone');
  assert.equal(codeOf(() => engine.createTeacher(new Uint8Array(16))), 'bad_magic');
  const t = engine.createTeacher(tinyBackbone(), { dims: 8 });
  try {
    // Black, and a uniform grey (a covered lens): nothing added.
    const black = new Uint8Array(FW * FH * 4).fill(0);
    assert.equal(codeOf(() => t.addFrame(black, FW, FH)), 'black_frame');
    const grey = new Uint8Array(FW * FH * 4).fill(90);
    assert.equal(codeOf(() => t.addFrame(grey, FW, FH)), 'black_frame');
    // Black inside the region of interest, the rest of the frame textured.
    const boxed = goodFrame(7);
    for (let y = 10; y < 50; y++) boxed.fill(0, (y * FW + 10) * 4, (y * FW + 60) * 4);
    assert.equal(codeOf(() => t.addFrame(boxed, FW, FH, 'rgba', { x: 10, y: 10, w: 50, h: 40 })), 'black_frame');
    assert.equal(t.images, 0);
    // The same frame twice: the second is a frozen camera.
    const f = goodFrame(11);
    t.addFrame(f, FW, FH);
    assert.equal(codeOf(() => t.addFrame(f, FW, FH)), 'frozen_frame');
    assert.equal(t.images, 1);
    // Too few to fit.
    for (let i = 0; i < 3; i++) t.addFrame(goodFrame(20 + i), FW, FH);
    assert.equal(codeOf(() => t.fit({ name: 'few' })), 'too_few');
    assert.equal(codeOf(() => t.fit({ sensitivity: 2 })), 'invalid_argument');
    assert.equal(codeOf(() => t.addFrame(f, FW, FH, 'bgr')), 'invalid_argument');
    assert.equal(codeOf(() => t.addFrame(f, FW, FH, 'rgba', { x: 500, y: 0, w: 10, h: 10 })), 'invalid_argument');
    assert.equal(t.images, 4, 'rejected frames are not added');
  } finally {
    t.dispose();
  }
  // Frames the model sees as identical (they differ only in alpha, which no
  // model reads): a clear 'degenerate', not a model that flags everything.
  const same = engine.createTeacher(tinyBackbone(), { dims: 8 });
  try {
    const f = goodFrame(99);
    for (let i = 0; i < 30; i++) {
      const g = f.slice();
      g[3] = i;  // alpha of the first pixel
      same.addFrame(g, FW, FH);
    }
    assert.equal(same.images, 30);
    assert.equal(codeOf(() => same.fit({ name: 'still' })), 'degenerate');
  } finally {
    same.dispose();
  }
});

test('Teacher: the wasm heap stays flat over repeated teach cycles', () => {
  const backbone = tinyBackbone();
  const frames = Array.from({ length: 24 }, (_, i) => goodFrame(300 + i));
  const cycle = () => {
    const t = engine.createTeacher(backbone, { dims: 8 });
    try {
      for (const f of frames) t.addFrame(f, FW, FH);
      const r = t.fit({ name: 'cycle' }, () => {});
      const det = engine.loadModel(r.bytes);
      det.detect(frames[0], FW, FH);
      det.dispose();
      assert.equal(codeOf(() => t.addFrame(new Uint8Array(FW * FH * 4), FW, FH)), 'black_frame');
    } finally {
      t.dispose();
    }
  };
  for (let i = 0; i < 3; i++) cycle();
  const startHeap = engine.heapInUse;
  for (let i = 0; i < 10; i++) cycle();
  assert.equal(engine.heapInUse, startHeap, `malloc'd bytes grew from ${startHeap} to ${engine.heapInUse}`);
});
