// flawlens's wasm engine as an engine of the anchor benchmark (../shared/bench).
//
//   d=$(mktemp -d) && cp -r ../shared/bench "$d" && cd "$d/bench"
//   ENGINE_CMD_flawlens_wasm="node --no-experimental-fetch /path/to/tools/bench/bench_shared.mjs" \
//     ENGINES="tfjs-wasm ort-web-wasm flawlens-wasm" bash run.sh
//
// Run from the bench folder (run.sh cds there); the net name is the last
// argument. Builds net A or B from the bench's own deterministic weights as a
// flawlens model file, loads it with the product module (web/js/engine.mjs +
// flawlens-core.wasm, single thread) and times runNetwork(): JS Float32Array in
// -> JS Float32Array out, as the other wasm engines are timed.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { hwioToOhwi, transpose, writeModel } from '../../tests/js/model_writer.mjs';
import { createEngine } from '../../web/js/engine.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(process.cwd(), 'noop.js'));
const C = require('./common.js');  // the bench's own definitions, from the bench folder

const netName = process.argv[process.argv.length - 1];
const backend = process.env.FLAWLENS_BACKEND || 'auto';
const modulePath = path.resolve(process.env.FLAWLENS_WASM || path.join(here, '../../build/wasm-release/flawlens-core.mjs'));

function toModel(W) {
  const { info, params } = W;
  const nodes = [];
  const tensors = [];
  let prev = 'input';
  info.layers.forEach((l, i) => {
    const name = `l${i}`;
    if (l.type === 'conv') {
      nodes.push({
        name, op: 'conv2d', inputs: [prev], out_channels: l.cout, kernel: [l.k, l.k], stride: [l.stride, l.stride],
        pad: [l.padT, l.padL, l.padB, l.padR], activation: l.act === 'relu' ? 'relu' : 'none',
        weight: `${name}.w`, bias: `${name}.b`,
      });
      tensors.push({ name: `${name}.w`, shape: [l.cout, l.k, l.k, l.cin], data: hwioToOhwi(params[i].w, l.k, l.k, l.cin, l.cout) });
      tensors.push({ name: `${name}.b`, shape: [l.cout], data: params[i].b });
    } else if (l.type === 'maxpool') {
      nodes.push({ name, op: 'maxpool2d', inputs: [prev], kernel: [l.k, l.k], stride: [l.stride, l.stride] });
    } else if (l.type === 'flatten') {
      return;  // dense flattens its input (NHWC order)
    } else if (l.type === 'dense') {
      nodes.push({
        name, op: 'dense', inputs: [prev], out_channels: l.units,
        activation: l.act === 'relu' ? 'relu' : l.act === 'sigmoid' ? 'sigmoid' : 'none',
        weight: `${name}.w`, bias: `${name}.b`,
      });
      tensors.push({ name: `${name}.w`, shape: [l.units, l.cin], data: transpose(params[i].w, l.cin, l.units) });
      tensors.push({ name: `${name}.b`, shape: [l.units], data: params[i].b });
    } else {
      throw new Error(`unknown layer ${l.type}`);
    }
    prev = name;
  });
  const [h, w, c] = W.net.input;
  return writeModel({
    graph: { input: { h, w, c }, nodes, output: prev },
    preprocess: { resize_w: w, resize_h: h, channels: c },
    card: { name: `anchor-bench-${W.net.name}` },
    tensors,
  });
}

globalThis.__dirname = path.dirname(modulePath);  // Emscripten 3.1.6 ES6 output on node
globalThis.require = require;
const engine = await createEngine({
  moduleUrl: pathToFileURL(modulePath).href,
  wasmBinary: fs.readFileSync(modulePath.replace(/\.mjs$/, '.wasm')),
});
const W = C.makeWeights(netName);
const det = engine.loadModel(toModel(W), { backend });
const infer = () => det.runNetwork(W.input);
const out = infer();
C.saveOutput('flawlens-wasm', netName, out);
const { warm, runs } = C.runCounts(netName);
const st = await C.timeIt(infer, warm, runs);
C.report('flawlens-wasm', netName, st, { threads: 1, backend: det.info.backend, out0: out[0] });
det.dispose();
