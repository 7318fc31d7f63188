// Reference outputs of a TF.js graph model for the importer's parity test
// (tests/tools/import_test.cc): loads model.json + weight shards from disk
// with a custom IO handler, sets the input placeholder to the requested size
// (the human-models graphs fix it at 512x512), runs with the tfjs wasm
// backend and writes each requested node's output as raw float32 (NHWC).
//
//   node tests/js/tfjs_reference.mjs --model M.json --input in.f32 --size 256x256 \
//        --nodes a,b --out-dir DIR [--repeat N]
// Writes DIR/0.f32, DIR/1.f32, ... (one per node, in order) and prints one
// JSON line: {"outputs": [{"node", "shape"}], "ms": [per-run times]}.
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import { loadGraphModel } from '@tensorflow/tfjs-converter';

function parseArgs(argv) {
  const args = { repeat: 1 };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (argv[i + 1] === undefined) throw new Error(`missing value for ${argv[i]}`);
    args[key] = argv[i + 1];
  }
  for (const k of ['model', 'input', 'size', 'nodes', 'outDir']) {
    if (!args[k]) throw new Error(`--${k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())} is required`);
  }
  const m = /^(\d+)x(\d+)$/.exec(args.size);
  if (!m) throw new Error(`--size must be WxH, got ${args.size}`);
  args.w = Number(m[1]);
  args.h = Number(m[2]);
  args.repeat = Math.max(1, Number(args.repeat));
  args.nodes = args.nodes.split(',').filter(Boolean);
  return args;
}

function diskHandler(modelPath, w, h) {
  return {
    async load() {
      const json = JSON.parse(fs.readFileSync(modelPath, 'utf8'));
      const dir = path.dirname(modelPath);
      let channels = 3;
      for (const node of json.modelTopology.node) {
        if (node.op !== 'Placeholder') continue;
        const dims = node.attr?.shape?.shape?.dim;
        if (dims && dims.length === 4) {
          channels = Number(dims[3].size);
          dims[1].size = String(h);
          dims[2].size = String(w);
        }
      }
      for (const input of Object.values(json.signature?.inputs ?? {})) {
        const dims = input.tensorShape?.dim;
        if (dims && dims.length === 4) {
          dims[1].size = String(h);
          dims[2].size = String(w);
        }
      }
      const specs = [];
      const buffers = [];
      for (const group of json.weightsManifest) {
        specs.push(...group.weights);
        for (const p of group.paths) buffers.push(fs.readFileSync(path.join(dir, p)));
      }
      const all = Buffer.concat(buffers);
      diskHandler.channels = channels;
      return {
        modelTopology: json.modelTopology,
        format: json.format,
        generatedBy: json.generatedBy,
        convertedBy: json.convertedBy,
        signature: json.signature,
        weightSpecs: specs,
        weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
      };
    },
  };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  await tf.setBackend('wasm');
  await tf.ready();
  const model = await loadGraphModel(diskHandler(args.model, args.w, args.h));
  const channels = diskHandler.channels;
  const raw = fs.readFileSync(args.input);
  const expected = args.w * args.h * channels * 4;
  if (raw.length !== expected) {
    throw new Error(`input has ${raw.length} bytes, ${args.w}x${args.h}x${channels} float32 needs ${expected}`);
  }
  const data = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
  const input = tf.tensor4d(data, [1, args.h, args.w, channels]);
  const inputName = model.inputs[0].name;
  const ms = [];
  let outs;
  for (let r = 0; r < args.repeat; ++r) {
    if (outs) tf.dispose(outs);
    const t0 = performance.now();
    outs = model.execute({ [inputName]: input }, args.nodes);
    if (!Array.isArray(outs)) outs = [outs];
    await Promise.all(outs.map((t) => t.data()));
    ms.push(performance.now() - t0);
  }
  fs.mkdirSync(args.outDir, { recursive: true });
  const report = { backend: tf.getBackend(), outputs: [], ms };
  for (let i = 0; i < outs.length; ++i) {
    const values = await outs[i].data();
    fs.writeFileSync(path.join(args.outDir, `${i}.f32`), Buffer.from(values.buffer, values.byteOffset, values.byteLength));
    report.outputs.push({ node: args.nodes[i], shape: outs[i].shape });
  }
  console.log(JSON.stringify(report));
}

main().catch((e) => {
  console.error(`tfjs_reference: ${e.message}`);
  process.exit(1);
});
