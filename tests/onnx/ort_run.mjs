// Runs an ONNX model with onnxruntime (CPU, one thread) on a raw float32 NCHW
// input: the reference flawlens import-onnx is compared against.
//
//   node ort_run.mjs MODEL.onnx INPUT.f32 C H W OUT_PREFIX RUNS
//
// writes OUT_PREFIX<i>.f32 per output (NCHW float32) and prints one JSON line:
// {"outputs": [{"name", "dims"}], "ms": median run time over RUNS runs}.
// onnxruntime-node comes from tests/onnx/package.json (npm ci --ignore-scripts:
// its install script would fetch a GPU build; the CPU binary is in the tarball).
import fs from 'node:fs';
import ort from 'onnxruntime-node';

const [model, inputPath, c, h, w, prefix, runsText] = process.argv.slice(2);
const runs = Math.max(1, Number(runsText || 1));
const buf = fs.readFileSync(inputPath);
const data = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
const session = await ort.InferenceSession.create(model, {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
});
const feeds = {[session.inputNames[0]]: new ort.Tensor('float32', data, [1, +c, +h, +w])};
let result = await session.run(feeds);  // warm-up
const times = [];
for (let i = 0; i < runs; ++i) {
  const t0 = process.hrtime.bigint();
  result = await session.run(feeds);
  times.push(Number(process.hrtime.bigint() - t0) / 1e6);
}
times.sort((a, b) => a - b);
const outputs = session.outputNames.map((name, i) => {
  const t = result[name];
  fs.writeFileSync(`${prefix}${i}.f32`, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  return {name, dims: t.dims};
});
console.log(JSON.stringify({outputs, ms: times[Math.floor(times.length / 2)]}));
