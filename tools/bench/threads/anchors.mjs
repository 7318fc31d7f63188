// The anchor engines, tfjs-backend-wasm and onnxruntime-web, for
// bench_page.mjs: one engine, one net, one thread count, timed the same way as
// ours (bench_worker.mjs): JS Float32Array in -> JS Float32Array out, after a
// warm-up of >= `warm` calls and >= `minWarmMs`. Runs in a dedicated worker
// (anchor_worker.mjs, the default: like ours, and where a waiting pthread
// sleeps in Atomics.wait) or on the page itself (where Emscripten's main
// thread has to busy-wait for its pool threads).
import { concatBytes, patchGraphInput } from './graph_util.mjs';

const inWorker = typeof document === 'undefined';
const root = new URL('./', import.meta.url);

async function bytes(url) {
  const r = await fetch(new URL(url, root));
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}
async function floats(url) {
  const b = await bytes(url);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}
// A classic script (tfjs's UMD bundles define globalThis.tf): a script tag on
// a page; in a module worker (no importScripts) evaluated in global scope.
async function loadScript(src) {
  if (inWorker) {
    (0, eval)(`${new TextDecoder().decode(await bytes(src))}\n//# sourceURL=${new URL(src, root).href}`);  // eslint-disable-line no-eval
    return;
  }
  await new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = new URL(src, root).href;
    s.onload = resolve;
    s.onerror = () => reject(new Error(`cannot load ${src}`));
    document.head.appendChild(s);
  });
}

// safetensors: 8-byte little-endian header length, JSON header, raw data.
function parseSafetensors(b) {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(b.subarray(8, 8 + n)));
  const base = 8 + n;
  const tensors = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (t.dtype !== 'F32') throw new Error(`tensor ${name}: dtype ${t.dtype}`);
    const [s, e] = t.data_offsets;
    const copy = b.slice(base + s, base + e);
    tensors[name] = { shape: t.shape, data: new Float32Array(copy.buffer) };
  }
  return { graph: JSON.parse(header.__metadata__.graph), tensors };
}

function nhwcToNchw(a, H, W, C) {
  const o = new Float32Array(a.length);
  for (let h = 0; h < H; h++) for (let w = 0; w < W; w++) for (let c = 0; c < C; c++)
    o[(c * H + h) * W + w] = a[(h * W + w) * C + c];
  return o;
}

// tfjs-backend-wasm 4.x caps its XNNPACK pool at hardwareConcurrency / 2 (it
// assumes two hyper-threads per core), whatever setThreadsCount asks for: on
// a 2-core machine it would run 1 thread. For a run at equal thread counts
// navigator.hardwareConcurrency reads at least 2 x threads here (page or
// worker) before the backend starts; the count actually used is read back
// (getThreadsCount) and printed.
const realCores = navigator.hardwareConcurrency;
let threads = 1;
let tfjsDefaultThreads = false;
function presentCores(n) {
  if (navigator.hardwareConcurrency >= n) return;
  Object.defineProperty(Object.getPrototypeOf(navigator), 'hardwareConcurrency', { configurable: true, get: () => n });
}

async function tfjsInit(withConverter) {
  if (threads > 1 && !tfjsDefaultThreads) presentCores(2 * threads);
  await loadScript('./tfjs/tf-core.min.js');
  await loadScript('./tfjs/tf-backend-wasm.min.js');
  if (withConverter) await loadScript('./tfjs/tf-converter.min.js');
  const tf = globalThis.tf;
  tf.wasm.setWasmPaths('./tfjs/');
  // Both must happen before setBackend: the pool is sized when the backend starts.
  if (threads > 1) { if (!tfjsDefaultThreads) tf.wasm.setThreadsCount(threads); }
  else tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);  // the SIMD single-thread binary
  if (!(await tf.setBackend('wasm'))) throw new Error('tfjs: the wasm backend did not initialise');
  await tf.ready();
  return tf;
}

// What tfjs really runs with: XNNPACK's pool size and, after the warm-up, the
// pthread workers that are running (pool threads besides the calling one).
function tfjsInfo(tf) {
  const wasm = tf.backend().wasm;
  return {
    version: tf.version_core, threads: tf.wasm.getThreadsCount(),
    runningWorkers: wasm && wasm.PThread ? wasm.PThread.runningWorkers.length : 0,
    multithreadBinary: tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT'),
    hardwareConcurrency: { real: realCores, presented: navigator.hardwareConcurrency },
  };
}

// Our activations (src/kernels/activation.h) in tfjs ops.
function activate(tf, x, act, alpha) {
  const a = alpha ?? (act === 'hard_swish' || act === 'hard_sigmoid' ? 1 / 6 : 0.01);
  switch (act || 'none') {
    case 'none': return x;
    case 'relu': return tf.relu(x);
    case 'relu6': return tf.relu6(x);
    case 'leaky_relu': return tf.leakyRelu(x, a);
    case 'sigmoid': return tf.sigmoid(x);
    case 'silu': return tf.mul(x, tf.sigmoid(x));
    case 'hard_sigmoid': return tf.mul(tf.relu6(tf.add(x, 3)), a);
    case 'hard_swish': return tf.mul(tf.mul(x, tf.relu6(tf.add(x, 3))), a);
    default: throw new Error(`activation ${act} not handled here`);
  }
}
const kFusedActivation = { none: 'linear', relu: 'relu', relu6: 'relu6' };

// A flawlens graph (src/nn/graph.h) built op by op in tfjs.
async function tfjs(model, input) {
  const tf = await tfjsInit(false);
  const { graph, tensors } = parseSafetensors(model);
  const shapes = { input: [graph.input.h, graph.input.w, graph.input.c] };
  const w = {};
  for (const n of graph.nodes) {
    const s0 = shapes[n.inputs[0]];
    if (n.op === 'conv2d') {
      const t = tensors[n.weight];
      const [o, kh, kw, ig] = t.shape;
      const groups = n.groups || 1;
      const bias = n.bias && tensors[n.bias] ? tf.tensor1d(tensors[n.bias].data) : null;
      if (groups === 1) {  // OHWI -> HWIO
        const f = new Float32Array(t.data.length);
        for (let a = 0; a < o; a++) for (let y = 0; y < kh; y++) for (let x = 0; x < kw; x++) for (let c = 0; c < ig; c++)
          f[((y * kw + x) * ig + c) * o + a] = t.data[((a * kh + y) * kw + x) * ig + c];
        w[n.name] = { f: tf.tensor4d(f, [kh, kw, ig, o]), b: bias, depthwise: false };
      } else if (groups === s0[2] && ig === 1) {
        // Depthwise, channel multiplier m = o / groups: output channel g*m + k
        // reads input channel g, as tfjs's [kh, kw, in, m] filter does.
        const m = o / groups;
        const f = new Float32Array(t.data.length);
        for (let a = 0; a < o; a++) for (let y = 0; y < kh; y++) for (let x = 0; x < kw; x++)
          f[((y * kw + x) * groups + Math.floor(a / m)) * m + (a % m)] = t.data[(a * kh + y) * kw + x];
        w[n.name] = { f: tf.tensor4d(f, [kh, kw, groups, m]), b: bias, depthwise: true };
      } else {
        throw new Error(`${n.name}: grouped conv with ${groups} groups of ${ig} channels not handled here`);
      }
      const [pt, pl, pb, pr] = n.pad || [0, 0, 0, 0];
      const d = n.dilation || [1, 1], st = n.stride || [1, 1];
      shapes[n.name] = [Math.floor((s0[0] + pt + pb - (d[0] * (kh - 1) + 1)) / st[0]) + 1,
                        Math.floor((s0[1] + pl + pr - (d[1] * (kw - 1) + 1)) / st[1]) + 1, o];
    } else if (n.op === 'position_mahalanobis') {
      const [h, wd, c] = s0;
      w[n.name] = { a: tf.tensor3d(tensors[n.weight].data, [h * wd, c, c]), mu: tf.tensor4d(tensors[n.bias].data, [1, h, wd, c]) };
      shapes[n.name] = [h, wd, 1];
    } else if (n.op === 'upsample') {
      shapes[n.name] = [s0[0] * n.scale[0], s0[1] * n.scale[1], s0[2]];
    } else if (n.op === 'concat') {
      shapes[n.name] = [s0[0], s0[1], n.inputs.reduce((c, k) => c + shapes[k][2], 0)];
    } else if (n.op === 'global_avgpool') {
      shapes[n.name] = [1, 1, s0[2]];
    } else if (n.op === 'reduce_channels') {
      shapes[n.name] = [s0[0], s0[1], 1];
    } else {
      shapes[n.name] = s0;
    }
  }
  const shape = [1, graph.input.h, graph.input.w, graph.input.c];
  const forward = (x) => tf.tidy(() => {
    const v = { input: x };
    for (const n of graph.nodes) {
      const ins = n.inputs.map((k) => v[k]);
      let y;
      if (n.op === 'conv2d') {
        const [t, l, b, r] = n.pad || [0, 0, 0, 0];
        const fused = kFusedActivation[n.activation || 'none'];
        const p = { x: ins[0], filter: w[n.name].f, bias: w[n.name].b, strides: n.stride || [1, 1],
                    pad: [[0, 0], [t, b], [l, r], [0, 0]], dilations: n.dilation || [1, 1],
                    activation: fused || 'linear' };
        y = w[n.name].depthwise ? tf.fused.depthwiseConv2d(p) : tf.fused.conv2d(p);
        if (!fused) y = activate(tf, y, n.activation, n.alpha);
      } else if (n.op === 'activation') {
        y = activate(tf, ins[0], n.activation, n.alpha);
      } else if (n.op === 'add') {
        y = activate(tf, tf.add(ins[0], ins[1]), n.activation, n.alpha);
      } else if (n.op === 'mul') {  // in1: same shape or 1x1xC (broadcast)
        y = activate(tf, tf.mul(ins[0], ins[1]), n.activation, n.alpha);
      } else if (n.op === 'global_avgpool') {
        y = tf.mean(ins[0], [1, 2], true);
      } else if (n.op === 'upsample') {
        const [, h, wd] = ins[0].shape;
        const size = [h * n.scale[0], wd * n.scale[1]];
        if (n.mode === 'bilinear') y = tf.image.resizeBilinear(ins[0], size, false, true);
        else if (n.mode === 'nearest') y = tf.image.resizeNearestNeighbor(ins[0], size, false, false);
        else throw new Error(`${n.name}: upsample mode ${n.mode}`);
      } else if (n.op === 'concat') {
        y = tf.concat(ins, 3);
      } else if (n.op === 'reduce_channels') {
        const mode = n.mode || 'sum_squares';
        if (mode === 'sum_squares') y = tf.sum(tf.square(ins[0]), 3, true);
        else if (mode === 'mean') y = tf.mean(ins[0], 3, true);
        else if (mode === 'min') y = tf.min(ins[0], 3, true);
        else if (mode === 'max') y = tf.max(ins[0], 3, true);
        else throw new Error(`${n.name}: reduce mode ${mode}`);
      } else if (n.op === 'position_mahalanobis') {
        // out[p] = |A_p (x_p - mu_p)|^2, as a batched matmul over positions.
        const [, h, wd, c] = ins[0].shape;
        const diff = tf.reshape(tf.sub(ins[0], w[n.name].mu), [h * wd, c, 1]);
        y = tf.reshape(tf.sum(tf.square(tf.matMul(w[n.name].a, diff)), 1), [1, h, wd, 1]);
      } else {
        throw new Error(`${n.name}: op ${n.op} not handled here`);
      }
      v[n.name] = y;
    }
    return v[graph.output];
  });
  const infer = async () => {
    const x = tf.tensor(input, shape);
    const y = forward(x);
    const out = y.dataSync();
    x.dispose();
    y.dispose();
    return out;
  };
  return { infer, info: () => ({ ...tfjsInfo(tf), graph: 'op by op from the model file' }) };
}

// The original TF.js graph model (net "backbone"): tfjs-converter's executor
// on the package's model.json, its input placeholder resized in memory to our
// input; the two feature maps it outputs are put together as our converted
// file does (the coarser one bilinearly upsampled, half-pixel centres, then
// concatenated on channels), so every engine does the same work and returns
// the same tensor.
async function tfjsGraph(meta, input) {
  const tf = await tfjsInit(true);
  if (!tf.loadGraphModel) throw new Error('tf-converter.min.js did not define tf.loadGraphModel');
  const base = new URL(`./nets/${meta.tfjsGraph}`, root);
  const json = JSON.parse(new TextDecoder().decode(await bytes(base.href)));
  const [H, W, C] = meta.input;
  const ph = patchGraphInput(json, [H, W, C]);
  const parts = [];
  for (const g of json.weightsManifest) for (const p of g.paths) parts.push(await bytes(new URL(p, base).href));
  const weightData = concatBytes(parts);
  const model = await tf.loadGraphModel(tf.io.fromMemory({
    modelTopology: json.modelTopology, weightSpecs: json.weightsManifest.flatMap((g) => g.weights),
    weightData: weightData.buffer, format: json.format, generatedBy: json.generatedBy,
    convertedBy: json.convertedBy, signature: json.signature,
  }));
  const outs = meta.features.map((f) => f.node);
  const [fh, fw] = [meta.featureShape[0], meta.featureShape[1]];
  const run = (head) => {
    const x = tf.tensor(input, [1, H, W, C]);
    const feats = model.execute({ [ph.name]: x }, outs);
    const y = tf.tidy(() => {
      const f = tf.concat(feats.map((t) => (t.shape[1] === fh && t.shape[2] === fw ? t
        : tf.image.resizeBilinear(t, [fh, fw], false, true))), 3);
      return head ? tf.mean(f, 3, true) : f;  // the bench's head: mean over channels
    });
    const out = y.dataSync();
    tf.dispose([x, y, ...feats]);
    return out;
  };
  const infer = async () => run(true);
  const features = async () => run(false);
  return { infer, features, info: () => ({ ...tfjsInfo(tf), graph: `original graph model (${json.modelTopology.node.length} nodes), outputs ${outs.length}` }) };
}

async function ort(onnx, input, H, W, C, meta) {
  const outShape = meta.output;
  const o = await import('./ort/ort.wasm.min.mjs');
  o.env.wasm.numThreads = threads;
  o.env.wasm.proxy = false;
  o.env.wasm.wasmPaths = new URL('./ort/', root).href;
  o.env.logLevel = 'error';
  const session = await o.InferenceSession.create(onnx, {
    executionProviders: ['wasm'], graphOptimizationLevel: 'all',
    intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential',
  });
  const x = nhwcToNchw(input, H, W, C);  // once, outside the timed region
  const inName = session.inputNames[0], outName = session.outputNames[0];
  const fetch1 = async (name) => {
    const res = await session.run({ [inName]: new o.Tensor('float32', x, [1, C, H, W]) }, [name]);
    const y = res[name];
    const data = y.data;
    if (y.dispose) y.dispose();
    return data;
  };
  const infer = () => fetch1(outName);
  // ort answers NCHW; the comparison wants NHWC like the others (not timed).
  const toNhwc = (y) => (outShape[2] === 1 ? y : nchwToNhwc(y, ...outShape));
  const features = meta.featureOutput
    ? async () => nchwToNhwc(await fetch1(meta.featureOutput), ...meta.featureShape) : null;
  // numThreads as ort leaves it after the session starts (it falls back to 1
  // without cross-origin isolation).
  return { infer, toNhwc, features, info: () => ({ version: o.env.versions ? o.env.versions.web : '?', threads: o.env.wasm.numThreads }) };
}

function nchwToNhwc(a, H, W, C) {
  const o = new Float32Array(a.length);
  for (let c = 0; c < C; c++) for (let h = 0; h < H; h++) for (let w = 0; w < W; w++)
    o[(h * W + w) * C + c] = a[(c * H + h) * W + w];
  return o;
}



// p: { engine: 'tfjs'|'ort', net, threads, warm, runs, minWarmMs,
//      tfjsDefaultThreads, tfjsGraph } -> { samples, out, features?, info }
export async function measureAnchor(p) {
  ({ threads } = p);
  tfjsDefaultThreads = p.tfjsDefaultThreads;
  const { engine, net } = p;
  const meta = JSON.parse(new TextDecoder().decode(await bytes(`./nets/${net}.json`)));
  const input = await floats(`./nets/${net}.input.bin`);
  const [H, W, C] = meta.input;
  let e;
  if (engine === 'tfjs') {
    e = meta.tfjsGraph && p.tfjsGraph !== false ? await tfjsGraph(meta, input)
      : await tfjs(await bytes(`./nets/${net}.safetensors`), input);
  } else if (engine === 'ort') {
    e = await ort(await bytes(`./nets/${net}.onnx`), input, H, W, C, meta);
  } else {
    throw new Error(`unknown engine ${engine}`);
  }
  let out = Float32Array.from(await e.infer());
  if (e.toNhwc) out = e.toNhwc(out);
  const w0 = performance.now();
  for (let i = 0; i < p.warm || performance.now() - w0 < p.minWarmMs; i++) await e.infer();
  const samples = [];
  for (let i = 0; i < p.runs; i++) {
    const t0 = performance.now();
    await e.infer();
    samples.push(performance.now() - t0);
  }
  const features = e.features ? Float32Array.from(await e.features()) : null;  // after the timed runs
  return { samples, out, features, info: { ...e.info(), where: inWorker ? 'worker' : 'page' } };
}
