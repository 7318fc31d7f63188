// One engine, one thread count, one net per page load (threads_bench.mjs
// drives it): ?engine=flawlens|flawlens-st|tfjs|ort&threads=N&net=NAME&runs=N.
// Times JS Float32Array in -> JS Float32Array out, as the anchor benchmark
// does, after a warm-up of >= `warm` calls and >= 1 s; leaves the result in
// window.__result.
const q = new URLSearchParams(location.search);
const engine = q.get('engine');
const threads = Number(q.get('threads') || 1);
const net = q.get('net');
const warm = Number(q.get('warm') || 5);
const runs = Number(q.get('runs') || 40);
const minWarmMs = Number(q.get('warmMs') || 1000);

const log = (s) => { document.getElementById('log').textContent += `${s}\n`; };

async function bytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}
async function floats(url) {
  const b = await bytes(url);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}
function loadScript(src) {
  return new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = src;
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

// ---- engines ------------------------------------------------------------------
// Ours runs in a Web Worker (bench_worker.mjs), as on the product page, and
// times itself there; tfjs and onnxruntime-web run on this page, as their
// own examples do (each starts its own worker threads).
function inWorker(moduleFile, model, input, pairedWith) {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('./bench_worker.mjs', import.meta.url), { type: 'module' });
    w.onmessage = ({ data }) => { w.terminate(); if (data.error) reject(new Error(data.error)); else resolve(data); };
    w.onerror = (e) => { w.terminate(); reject(new Error(e.message)); };
    w.postMessage({ moduleFile, model, input, threads, pairedWith, warm, runs, minWarmMs });
  });
}

async function tfjs(model, input) {
  await loadScript('./tfjs/tf-core.min.js');
  await loadScript('./tfjs/tf-backend-wasm.min.js');
  const tf = globalThis.tf;
  tf.wasm.setWasmPaths('./tfjs/');
  if (threads > 1) { if (q.get('tfjsDefaultThreads') !== '1') tf.wasm.setThreadsCount(threads); }
  else tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);  // the SIMD single-thread binary
  await tf.setBackend('wasm');
  await tf.ready();
  const { graph, tensors } = parseSafetensors(model);
  const w = {};
  // OHWI -> HWIO
  const filter = (t) => {
    const [o, kh, kw, i] = t.shape;
    const out = new Float32Array(t.data.length);
    for (let a = 0; a < o; a++) for (let y = 0; y < kh; y++) for (let x = 0; x < kw; x++) for (let c = 0; c < i; c++)
      out[((y * kw + x) * i + c) * o + a] = t.data[((a * kh + y) * kw + x) * i + c];
    return tf.tensor4d(out, [kh, kw, i, o]);
  };
  for (const n of graph.nodes) {
    if (n.op !== 'conv2d') continue;
    if ((n.groups || 1) !== 1) throw new Error(`${n.name}: groups`);
    w[n.name] = { f: filter(tensors[n.weight]), b: n.bias && tensors[n.bias] ? tf.tensor1d(tensors[n.bias].data) : null };
  }
  const shape = [1, graph.input.h, graph.input.w, graph.input.c];
  const forward = (x) => tf.tidy(() => {
    const v = { input: x };
    for (const n of graph.nodes) {
      const ins = n.inputs.map((k) => v[k]);
      let y;
      if (n.op === 'conv2d') {
        const [t, l, b, r] = n.pad;
        if (!['relu', 'none'].includes(n.activation)) throw new Error(`${n.name}: ${n.activation}`);
        y = tf.fused.conv2d({
          x: ins[0], filter: w[n.name].f, bias: w[n.name].b, strides: n.stride,
          pad: [[0, 0], [t, b], [l, r], [0, 0]], dilations: n.dilation || [1, 1],
          activation: n.activation === 'relu' ? 'relu' : 'linear',
        });
      } else if (n.op === 'upsample') {
        const [, h, wd] = ins[0].shape;
        if (n.mode !== 'bilinear') throw new Error(`${n.name}: ${n.mode}`);
        y = tf.image.resizeBilinear(ins[0], [h * n.scale[0], wd * n.scale[1]], false, true);
      } else if (n.op === 'concat') {
        y = tf.concat(ins, 3);
      } else if (n.op === 'reduce_channels') {
        if (n.mode !== 'sum_squares') throw new Error(`${n.name}: ${n.mode}`);
        y = tf.sum(tf.square(ins[0]), 3, true);
      } else {
        throw new Error(`${n.name}: op ${n.op}`);
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
  return { infer, info: { version: tf.version_core, threads: tf.wasm.getThreadsCount(),
                          multithreadBinary: await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT') } };
}

async function ort(onnx, input, H, W, C) {
  const o = await import('./ort/ort.wasm.min.mjs');
  o.env.wasm.numThreads = threads;
  o.env.wasm.proxy = false;
  o.env.wasm.wasmPaths = new URL('./ort/', location.href).href;
  o.env.logLevel = 'error';
  const session = await o.InferenceSession.create(onnx, {
    executionProviders: ['wasm'], graphOptimizationLevel: 'all',
    intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential',
  });
  const x = nhwcToNchw(input, H, W, C);  // once, outside the timed region
  const inName = session.inputNames[0], outName = session.outputNames[0];
  const infer = async () => {
    const res = await session.run({ [inName]: new o.Tensor('float32', x, [1, C, H, W]) });
    const y = res[outName];
    const data = y.data;
    if (y.dispose) y.dispose();
    return data;
  };
  return { infer, info: { version: o.env.versions ? o.env.versions.web : '?', threads: o.env.wasm.numThreads } };
}

async function main() {
  const meta = JSON.parse(new TextDecoder().decode(await bytes(`./nets/${net}.json`)));
  const input = await floats(`./nets/${net}.input.bin`);
  const [H, W, C] = meta.input;
  const common = { net, threads, isolated: globalThis.crossOriginIsolated, cores: navigator.hardwareConcurrency };
  if (engine.startsWith('flawlens')) {
    const paired = engine === 'flawlens-paired';
    const r = await inWorker(engine === 'flawlens-st' ? 'flawlens-core.mjs' : 'flawlens-core-mt.mjs',
                             await bytes(`./nets/${net}.safetensors`), input, paired);
    return { engine, ...common, samples: r.samples[0], samples2: paired ? r.samples[1] : undefined, out: r.out,
             info: { threads: r.threads, where: 'worker' } };
  }
  let e;
  if (engine === 'tfjs') e = await tfjs(await bytes(`./nets/${net}.safetensors`), input);
  else if (engine === 'ort') e = await ort(await bytes(`./nets/${net}.onnx`), input, H, W, C);
  else throw new Error(`unknown engine ${engine}`);
  const out = Float32Array.from(await e.infer());
  const w0 = performance.now();
  for (let i = 0; i < warm || performance.now() - w0 < minWarmMs; i++) await e.infer();
  const samples = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await e.infer();
    samples.push(performance.now() - t0);
  }
  return { engine, net, threads, samples, out: Array.from(out), info: e.info,
           isolated: globalThis.crossOriginIsolated, cores: navigator.hardwareConcurrency };
}

main().then((r) => { window.__result = r; log('done'); },
            (err) => { window.__result = { error: String(err && err.stack || err) }; log(String(err)); });
