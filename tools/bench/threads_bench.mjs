// Threads in the browser: our wasm engine with 1 and 2 threads against
// tfjs-backend-wasm and onnxruntime-web with 1 and 2 threads, in the same
// run, in headless Chromium on a cross-origin isolated page (tools/serve.py).
// A benchmark, not a test.
//
//   d=$(mktemp -d) && cp -r ../shared/bench "$d" && (cd "$d/bench" && npm ci && node make_onnx.js)
//   node tools/bench/threads_bench.mjs --anchor "$d/bench" --wasm build/<you>-wasm \
//     [--nets B,default] [--threads 1,2] [--engines flawlens,tfjs,ort,flawlens-st]
//     [--repeats 3] [--runs 40] [--out FILE] [--keep 1 (keep the generated site)]
//
// --wasm: a wasm build folder with flawlens-core-mt.* (and flawlens-core.*,
// timed as "flawlens-st" when present). Nets: B = the anchor's FCN-256 (its
// own weights and input, its ONNX file), default = build/model/default.safetensors (model/build_default.sh)
// (tfjs and ONNX versions built here from the model file; input: a fixed
// pseudo-random image in [-2, 2)). Every engine runs on its own page load;
// configurations are interleaved within a repeat; the figure is the median
// over repeats of each page's median. Outputs are checked against tfjs with
// one thread within the anchor's tolerance (1e-3 absolute). "flawlens-paired"
// runs our engine with 1 and N threads in one page, alternating run by run,
// for the thread speed-up on a busy machine.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const { launch } = await import(path.join(repo, 'tests/browser/lib/browser.mjs'));
const { hwioToOhwi, writeModel } = await import(path.join(repo, 'tests/js/model_writer.mjs'));

const TOL = 1e-3;

function parseArgs(argv) {
  const a = { nets: 'B,default', threads: '1,2', engines: null, keep: null, repeats: 3, runs: 40, out: null, anchor: null, wasm: null };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '');
    if (!(k in a)) throw new Error(`unknown option ${argv[i]}`);
    a[k] = argv[++i];
  }
  if (!a.anchor || !a.wasm) throw new Error('usage: threads_bench.mjs --anchor DIR --wasm DIR [...]');
  a.nets = a.nets.split(',');
  a.threads = a.threads.split(',').map(Number);
  if (a.engines) a.engines = a.engines.split(',');
  a.repeats = Number(a.repeats);
  a.runs = Number(a.runs);
  return a;
}

const args = parseArgs(process.argv.slice(2));
const anchor = path.resolve(args.anchor);
const wasmDir = path.resolve(args.wasm);
const areq = createRequire(path.join(anchor, 'noop.js'));
const C = areq('./common.js');
const { onnx } = areq('onnx-proto');
const lines = [];
const say = (s) => { console.log(s); lines.push(s); };

// ---- nets ---------------------------------------------------------------------
function mulberry32(a) {
  return () => {
    a |= 0; a = (a + 0x6D2B79F5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// The anchor's net as a flawlens model (as tools/bench/bench_shared.mjs does).
function anchorModel(W) {
  const nodes = [], tensors = [];
  let prev = 'input';
  W.info.layers.forEach((l, i) => {
    if (l.type !== 'conv') throw new Error(`net ${W.net.name}: layer ${l.type} not handled here`);
    const name = `l${i}`;
    nodes.push({
      name, op: 'conv2d', inputs: [prev], out_channels: l.cout, kernel: [l.k, l.k], stride: [l.stride, l.stride],
      pad: [l.padT, l.padL, l.padB, l.padR], activation: l.act === 'relu' ? 'relu' : 'none',
      weight: `${name}.w`, bias: `${name}.b`,
    });
    tensors.push({ name: `${name}.w`, shape: [l.cout, l.k, l.k, l.cin], data: hwioToOhwi(W.params[i].w, l.k, l.k, l.cin, l.cout) });
    tensors.push({ name: `${name}.b`, shape: [l.cout], data: W.params[i].b });
    prev = name;
  });
  const [h, w, c] = W.net.input;
  return writeModel({
    graph: { input: { h, w, c }, nodes, output: prev },
    preprocess: { resize_w: w, resize_h: h, channels: c },
    card: { name: `anchor-bench-${W.net.name}` }, tensors,
  });
}

function parseSafetensors(b) {
  const n = Number(b.readBigUInt64LE(0));
  const header = JSON.parse(b.subarray(8, 8 + n).toString('utf8'));
  const tensors = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [s, e] = t.data_offsets;
    const copy = Buffer.from(b.subarray(8 + n + s, 8 + n + e));
    tensors[name] = { shape: t.shape, data: new Float32Array(copy.buffer, copy.byteOffset, copy.length / 4) };
  }
  return { graph: JSON.parse(header.__metadata__.graph), tensors };
}

// A flawlens graph (conv2d relu/none, bilinear upsample, concat,
// reduce_channels sum_squares) as ONNX, NCHW, opset 13.
function toOnnx(model) {
  const { graph, tensors } = parseSafetensors(model);
  const tensorProto = (name, dims, f32) => onnx.TensorProto.create({
    name, dims, dataType: onnx.TensorProto.DataType.FLOAT,
    rawData: new Uint8Array(f32.buffer.slice(f32.byteOffset, f32.byteOffset + f32.byteLength)),
  });
  const T = onnx.AttributeProto.AttributeType;
  const ints = (name, v) => onnx.AttributeProto.create({ name, type: T.INTS, ints: v });
  const int = (name, v) => onnx.AttributeProto.create({ name, type: T.INT, i: v });
  const str = (name, v) => onnx.AttributeProto.create({ name, type: T.STRING, s: new TextEncoder().encode(v) });
  const valueInfo = (name, dims) => onnx.ValueInfoProto.create({
    name, type: onnx.TypeProto.create({ tensorType: onnx.TypeProto.Tensor.create({
      elemType: onnx.TensorProto.DataType.FLOAT,
      shape: onnx.TensorShapeProto.create({ dim: dims.map((d) => onnx.TensorShapeProto.Dimension.create({ dimValue: d })) }),
    }) }),
  });
  const nodes = [], inits = [];
  const shapes = { input: [graph.input.h, graph.input.w, graph.input.c] };
  for (const n of graph.nodes) {
    const ins = n.inputs;
    const s0 = shapes[ins[0]];
    if (n.op === 'conv2d') {
      const wt = tensors[n.weight];
      const [o, kh, kw, ci] = wt.shape;
      const w = new Float32Array(wt.data.length);  // OHWI -> OIHW
      for (let a = 0; a < o; a++) for (let y = 0; y < kh; y++) for (let x = 0; x < kw; x++) for (let c = 0; c < ci; c++)
        w[((a * ci + c) * kh + y) * kw + x] = wt.data[((a * kh + y) * kw + x) * ci + c];
      inits.push(tensorProto(`${n.name}.w`, [o, ci, kh, kw], w));
      const hasBias = Boolean(n.bias && tensors[n.bias]);
      if (hasBias) inits.push(tensorProto(`${n.name}.b`, [o], tensors[n.bias].data));
      const [t, l, b, r] = n.pad;
      const d = n.dilation || [1, 1];
      const conv = n.activation === 'relu' ? `${n.name}.pre` : n.name;
      nodes.push(onnx.NodeProto.create({ opType: 'Conv', input: [ins[0], `${n.name}.w`, ...(hasBias ? [`${n.name}.b`] : [])], output: [conv],
        attribute: [ints('kernel_shape', [kh, kw]), ints('strides', n.stride), ints('pads', [t, l, b, r]),
          ints('dilations', d), int('group', n.groups || 1)] }));
      if (n.activation === 'relu') nodes.push(onnx.NodeProto.create({ opType: 'Relu', input: [conv], output: [n.name] }));
      else if (n.activation !== 'none') throw new Error(`${n.name}: ${n.activation}`);
      const oh = Math.floor((s0[0] + t + b - (d[0] * (kh - 1) + 1)) / n.stride[0]) + 1;
      const ow = Math.floor((s0[1] + l + r - (d[1] * (kw - 1) + 1)) / n.stride[1]) + 1;
      shapes[n.name] = [oh, ow, o];
    } else if (n.op === 'upsample') {
      inits.push(tensorProto(`${n.name}.scales`, [4], new Float32Array([1, 1, n.scale[0], n.scale[1]])));
      nodes.push(onnx.NodeProto.create({ opType: 'Resize', input: [ins[0], '', `${n.name}.scales`], output: [n.name],
        attribute: [str('mode', 'linear'), str('coordinate_transformation_mode', 'half_pixel')] }));
      shapes[n.name] = [s0[0] * n.scale[0], s0[1] * n.scale[1], s0[2]];
    } else if (n.op === 'concat') {
      nodes.push(onnx.NodeProto.create({ opType: 'Concat', input: ins, output: [n.name], attribute: [int('axis', 1)] }));
      shapes[n.name] = [s0[0], s0[1], ins.reduce((c, k) => c + shapes[k][2], 0)];
    } else if (n.op === 'reduce_channels' && n.mode === 'sum_squares') {
      nodes.push(onnx.NodeProto.create({ opType: 'ReduceSumSquare', input: [ins[0]], output: [n.name],
        attribute: [ints('axes', [1]), int('keepdims', 1)] }));
      shapes[n.name] = [s0[0], s0[1], 1];
    } else {
      throw new Error(`${n.name}: op ${n.op} not handled here`);
    }
  }
  const out = shapes[graph.output];
  const g = onnx.GraphProto.create({
    name: 'flawlens', node: nodes, initializer: inits,
    input: [valueInfo('input', [1, graph.input.c, graph.input.h, graph.input.w])],
    output: [valueInfo(graph.output, [1, out[2], out[0], out[1]])],
  });
  return Buffer.from(onnx.ModelProto.encode(onnx.ModelProto.create({
    irVersion: 7, producerName: 'flawlens threads_bench', graph: g,
    opsetImport: [onnx.OperatorSetIdProto.create({ domain: '', version: 13 })],
  })).finish());
}

function writeNet(dir, name, model, onnxBytes, input, shape) {
  fs.writeFileSync(path.join(dir, `${name}.safetensors`), model);
  fs.writeFileSync(path.join(dir, `${name}.onnx`), onnxBytes);
  fs.writeFileSync(path.join(dir, `${name}.input.bin`), Buffer.from(input.buffer, input.byteOffset, input.byteLength));
  fs.writeFileSync(path.join(dir, `${name}.json`), JSON.stringify({ input: shape }));
}

// ---- site -----------------------------------------------------------------------
const site = fs.mkdtempSync(path.join(os.tmpdir(), 'flawlens-threads-bench-'));
for (const d of ['ours', 'tfjs', 'ort', 'nets']) fs.mkdirSync(path.join(site, d));
for (const f of ['bench.html', 'bench_page.mjs', 'bench_worker.mjs']) fs.copyFileSync(path.join(here, 'threads', f), path.join(site, f));
const engines = ['flawlens', 'tfjs', 'ort'];
for (const f of ['flawlens-core-mt.mjs', 'flawlens-core-mt.wasm', 'flawlens-core-mt.worker.js'])
  fs.copyFileSync(path.join(wasmDir, f), path.join(site, 'ours', f));
if (fs.existsSync(path.join(wasmDir, 'flawlens-core.wasm'))) {
  for (const f of ['flawlens-core.mjs', 'flawlens-core.wasm']) fs.copyFileSync(path.join(wasmDir, f), path.join(site, 'ours', f));
  engines.unshift('flawlens-st');
}
const nm = path.join(anchor, 'node_modules');
fs.copyFileSync(path.join(nm, '@tensorflow/tfjs-core/dist/tf-core.min.js'), path.join(site, 'tfjs/tf-core.min.js'));
for (const f of ['tf-backend-wasm.min.js', 'tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm-threaded-simd.wasm'])
  fs.copyFileSync(path.join(nm, '@tensorflow/tfjs-backend-wasm/dist', f), path.join(site, 'tfjs', f));
for (const f of ['ort.wasm.min.mjs', 'ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm'])
  fs.copyFileSync(path.join(nm, 'onnxruntime-web/dist', f), path.join(site, 'ort', f));

const netsDir = path.join(site, 'nets');
for (const net of args.nets) {
  if (net === 'default') {
    const model = fs.readFileSync(path.join(repo, 'build/model/default.safetensors'));
    const { graph } = parseSafetensors(model);
    const shape = [graph.input.h, graph.input.w, graph.input.c];
    const rnd = mulberry32(0xf1a);
    const input = new Float32Array(shape[0] * shape[1] * shape[2]).map(() => rnd() * 4 - 2);
    writeNet(netsDir, net, model, toOnnx(model), input, shape);
  } else {
    const W = C.makeWeights(net);
    writeNet(netsDir, net, anchorModel(W), fs.readFileSync(path.join(anchor, 'models', `${net}.onnx`)), W.input, W.net.input);
  }
}

// ---- serve + browser ---------------------------------------------------------------
const server = spawn('python3', [path.join(repo, 'tools/serve.py'), '0', '--dir', site, '--quiet'],
                     { stdio: ['ignore', 'pipe', 'inherit'] });
const origin = await new Promise((resolve, reject) => {
  let buf = '';
  server.stdout.on('data', (d) => {
    buf += d;
    const m = buf.match(/http:\/\/127\.0\.0\.1:(\d+)\//);
    if (m) resolve(`http://127.0.0.1:${m[1]}`);
  });
  server.on('exit', (code) => reject(new Error(`serve.py exited (${code})`)));
});

const stats = (s) => {
  const a = [...s].sort((x, y) => x - y);
  const q = (p) => a[Math.min(a.length - 1, Math.round(p * (a.length - 1)))];
  return { median: q(0.5), p10: q(0.1), p90: q(0.9), min: a[0] };
};
const median = (v) => { const a = [...v].sort((x, y) => x - y); const m = a.length >> 1; return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2; };

// How many cores this process really gets right now: the same busy loop on
// 1 and on 2 worker threads (2 x the work). 2.0 on an idle 2-core machine;
// near 1.0 when other jobs keep a core busy (then no engine gains from a
// second thread).
async function effectiveCores() {
  const loop = 'let x = 0; for (let i = 0; i < 3e8; i++) x += i * 1e-9; require("worker_threads").parentPort.postMessage(x);';
  const run = (n) => {
    const t0 = performance.now();
    return Promise.all(Array.from({ length: n }, () => new Promise((resolve) => {
      const w = new Worker(loop, { eval: true });
      w.once('message', () => { w.terminate(); resolve(); });
    }))).then(() => performance.now() - t0);
  };
  const one = await run(1), two = await run(2);
  return { one, two, cores: (2 * one) / two };
}

const results = {};  // key -> { medians: [], out, info }
const key = (e, n, t) => `${e}|${n}|${t}`;
const browser = await launch({});
try {
  say(`# threads_bench ${new Date().toISOString()}  load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  say(`# chromium headless, ${origin} served by tools/serve.py (COOP/COEP); repeats ${args.repeats}, runs/page ${args.runs}`);
  const probe = await effectiveCores();
  say(`# effective cores before: ${probe.cores.toFixed(2)} (busy loop: 1 thread ${probe.one.toFixed(0)} ms, 2 threads x2 work ${probe.two.toFixed(0)} ms)`);
  for (let rep = 0; rep < args.repeats; rep++) {
    for (const net of args.nets) {
      for (const t of args.threads) {
        for (const e of [...engines, ...(t > 1 ? ['flawlens-paired'] : [])]) {
          if (e === 'flawlens-st' && t !== 1) continue;
          if (args.engines && !args.engines.includes(e)) continue;
          const url = `${origin}/bench.html?engine=${e}&threads=${t}&net=${net}&runs=${args.runs}`;
          const page = await browser.context.newPage();
          await page.goto(url);
          await page.waitForFunction(() => window.__result !== undefined, null, { timeout: 600000 });
          const r = await page.evaluate(() => window.__result);
          await page.close();
          if (r.error) throw new Error(`${e} ${net} x${t}: ${r.error}`);
          if (!r.isolated) throw new Error('page is not cross-origin isolated');
          if (e === 'flawlens-paired') {
            const a = stats(r.samples), b = stats(r.samples2);
            const ratios = r.samples2.map((x, i) => x / r.samples[i]);
            const k = key(e, net, t);
            results[k] ??= { ratios: [], out: r.out, info: r.info };
            results[k].ratios.push(median(ratios));
            say(`PAIRED ${JSON.stringify({ rep, net, threads: t, x1_median: +a.median.toFixed(3), [`x${t}_median`]: +b.median.toFixed(3),
              x1_p10: +a.p10.toFixed(3), [`x${t}_p10`]: +b.p10.toFixed(3), median_of_ratios: +median(ratios).toFixed(3),
              load: +os.loadavg()[0].toFixed(1) })}`);
            continue;
          }
          const s = stats(r.samples);
          const k = key(e, net, t);
          results[k] ??= { medians: [], out: r.out, info: r.info };
          results[k].medians.push(s.median);
          say(`RESULT ${JSON.stringify({ rep, net, engine: e, threads: t, ...Object.fromEntries(Object.entries(s).map(([a, b]) => [a, +b.toFixed(3)])), info: r.info, cores: r.cores, load: +os.loadavg()[0].toFixed(1) })}`);
        }
      }
    }
  }
  const after = await effectiveCores();
  say(`# effective cores after: ${after.cores.toFixed(2)} (1 thread ${after.one.toFixed(0)} ms, 2 threads x2 work ${after.two.toFixed(0)} ms); load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
} finally {
  await browser.close();
  server.kill();
  if (args.keep) console.log(`site kept in ${site}`);
  else fs.rmSync(site, { recursive: true, force: true });
}

// ---- summary ---------------------------------------------------------------------------
say('');
say(`# outputs vs tfjs (1 thread), tolerance ${TOL} absolute`);
let bad = 0;
for (const net of args.nets) {
  const ref = results[key('tfjs', net, 1)]?.out;
  for (const [k, r] of Object.entries(results)) {
    const [e, n, t] = k.split('|');
    if (n !== net || !ref) continue;
    let mad = 0;
    for (let i = 0; i < ref.length; i++) { const d = Math.abs(r.out[i] - ref[i]); if (!(d <= mad)) mad = d; }
    const ok = r.out.length === ref.length && mad <= TOL;
    if (!ok) bad++;
    say(`  ${net.padEnd(8)} ${e.padEnd(12)} x${t}  ${ok ? 'PASS' : 'FAIL'}  max|diff| ${mad.toExponential(2)}  (${r.out.length} values)`);
  }
}
say('');
say(`# median over ${args.repeats} repeats of per-page medians (ms)`);
say(`  ${'net'.padEnd(8)} ${'engine'.padEnd(12)} ${args.threads.map((t) => `x${t}`.padStart(9)).join('')}`);
const med = {};
for (const net of args.nets) {
  for (const e of engines) {
    const row = args.threads.map((t) => {
      const r = results[key(e, net, t)];
      if (!r) return '-'.padStart(9);
      med[key(e, net, t)] = median(r.medians);
      return med[key(e, net, t)].toFixed(2).padStart(9);
    });
    say(`  ${net.padEnd(8)} ${e.padEnd(12)} ${row.join('')}`);
  }
}
say('');
say('# bars: ours x2 <= 0.6 x ours x1; ours faster than tfjs and ort at equal threads');
for (const net of args.nets) {
  for (const t of args.threads) {
    const p = results[key('flawlens-paired', net, t)];
    if (p) say(`  ${net}: ours x${t} / x1, same page, runs alternating: median of per-pair ratios, median over repeats ${median(p.ratios).toFixed(3)} (repeats: ${p.ratios.map((x) => x.toFixed(3)).join(', ')})`);
  }
  const o1 = med[key('flawlens', net, 1)], o2 = med[key('flawlens', net, 2)];
  if (o1 && o2) say(`  ${net}: ours x2 / x1 = ${(o2 / o1).toFixed(3)} ${o2 / o1 <= 0.6 ? '(bar met)' : '(bar NOT met)'}`);
  for (const t of args.threads) {
    const o = med[key('flawlens', net, t)];
    for (const other of ['tfjs', 'ort']) {
      const x = med[key(other, net, t)];
      if (o && x) say(`  ${net} x${t}: ${other} / ours = ${(x / o).toFixed(2)} ${o < x ? '(ours faster)' : '(ours NOT faster)'}`);
    }
  }
}
if (args.out) fs.writeFileSync(args.out, `${lines.join('\n')}\n`);
process.exit(bad ? 1 : 0);
