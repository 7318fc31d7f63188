// Runs a model written by `flawlens export-onnx` in ONNX Runtime (CPU, npm
// onnxruntime-node) on the inputs of a `--test-data` file and compares the
// score, map and label with what the flawlens engine gave for the same images.
//
//   node tests/onnx_export/compare.mjs MODEL.onnx TEST_DATA.json [--tol 1e-4]
//        [--cli FLAWLENS --model MODEL.safetensors] [--json]
//
// Differences (each the largest over the images):
//   raw score: |ort - engine| * calibration scale / |engine raw score|, the
//              relative difference of the network's score before the
//              calibration turns it into standard deviations of good scores
//              (a good image's calibrated score is near 0, so a difference
//              relative to it says nothing);
//   score:     |ort - engine| in calibrated units;
//   map:       max |ort - engine| / max |engine| over the map's cells;
//   label:     pred_label == (engine score >= threshold).
// The images are run one at a time and then all at once (the graph's batch
// dimension); both must match. With --cli, `flawlens score --format jsonl`
// is run on the same images and its scores are compared with ONNX
// Runtime's too.
// Exit 0 when every difference is within --tol, 1 otherwise, 2 on bad usage.
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import * as ort from 'onnxruntime-node';

function usage(msg) {
  if (msg) console.error(`compare.mjs: ${msg}`);
  console.error('usage: node compare.mjs MODEL.onnx TEST_DATA.json [--tol 1e-4] [--cli FLAWLENS --model M] [--json]');
  process.exit(2);
}

const args = process.argv.slice(2);
const positional = [];
const opt = { tol: 1e-4, cli: '', model: '', json: false };
for (let i = 0; i < args.length; ++i) {
  const a = args[i];
  if (a === '--tol') opt.tol = Number(args[++i]);
  else if (a === '--cli') opt.cli = args[++i];
  else if (a === '--model') opt.model = args[++i];
  else if (a === '--json') opt.json = true;
  else if (a.startsWith('--')) usage(`unknown option ${a}`);
  else positional.push(a);
}
if (positional.length !== 2 || !(opt.tol > 0)) usage();
if (opt.cli && !opt.model) usage('--cli needs --model');

function floats(b64) {
  const buf = Buffer.from(b64, 'base64');
  return new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
}

const [onnxPath, dataPath] = positional;
const data = JSON.parse(readFileSync(dataPath, 'utf8'));
const session = await ort.InferenceSession.create(onnxPath, {
  executionProviders: ['cpu'],
  intraOpNumThreads: 1,
  graphOptimizationLevel: 'all',
});
const calScale = data.calibration_scale;

const [, c, h, w] = data.input_shape;
const rows = [];
const worst = { raw: 0, score: 0, map: 0, labels: 0, cli: 0, batch_raw: 0, batch_map: 0, batch_labels: 0 };
for (const img of data.images) {
  const input = new ort.Tensor('float32', floats(img.input), [1, c, h, w]);
  const t0 = performance.now();
  const out = await session.run({ [data.input_name]: input });
  const ms = performance.now() - t0;
  const score = out.pred_score.data[0];
  const map = out.anomaly_map.data;
  const label = Boolean(out.pred_label.data[0]);
  const ref = floats(img.map);
  if (map.length !== ref.length) {
    console.error(`${img.path}: ONNX map has ${map.length} cells, the engine's ${ref.length}`);
    process.exit(1);
  }
  let dmax = 0, rmax = 0;
  for (let k = 0; k < ref.length; ++k) {
    dmax = Math.max(dmax, Math.abs(map[k] - ref[k]));
    rmax = Math.max(rmax, Math.abs(ref[k]));
  }
  const row = {
    path: img.path,
    engine_score: img.score,
    ort_score: score,
    score_diff: Math.abs(score - img.score),
    raw_rel: (Math.abs(score - img.score) * calScale) / Math.max(Math.abs(img.raw_score), 1e-30),
    map_rel: dmax / Math.max(rmax, 1e-30),
    label_ok: label === (img.score >= data.threshold),
    ms,
  };
  rows.push(row);
  worst.raw = Math.max(worst.raw, row.raw_rel);
  worst.score = Math.max(worst.score, row.score_diff);
  worst.map = Math.max(worst.map, row.map_rel);
  if (!row.label_ok) worst.labels += 1;
}

// All images in one batch.
{
  const n = data.images.length, size = c * h * w;
  const batch = new Float32Array(n * size);
  data.images.forEach((img, k) => batch.set(floats(img.input), k * size));
  const out = await session.run({ [data.input_name]: new ort.Tensor('float32', batch, [n, c, h, w]) });
  const cells = out.anomaly_map.data.length / n;
  data.images.forEach((img, k) => {
    const ref = floats(img.map);
    let dmax = 0, rmax = 0;
    for (let q = 0; q < cells; ++q) {
      dmax = Math.max(dmax, Math.abs(out.anomaly_map.data[k * cells + q] - ref[q]));
      rmax = Math.max(rmax, Math.abs(ref[q]));
    }
    const score = out.pred_score.data[k];
    worst.batch_raw = Math.max(worst.batch_raw,
      (Math.abs(score - img.score) * calScale) / Math.max(Math.abs(img.raw_score), 1e-30));
    worst.batch_map = Math.max(worst.batch_map, dmax / Math.max(rmax, 1e-30));
    if (Boolean(out.pred_label.data[k]) !== (img.score >= data.threshold)) worst.batch_labels += 1;
  });
}

if (opt.cli) {
  const paths = data.images.map((i) => i.path);
  // The same region of interest as the test data (the model card's, unless --no-roi).
  const roiArgs = data.roi === false ? ['--no-roi'] : [];
  const text = execFileSync(opt.cli, ['score', opt.model, ...paths, '--format', 'jsonl', '--threads', '1', ...roiArgs],
    { maxBuffer: 1 << 26, stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  const lines = text.trim().split('\n').map((l) => JSON.parse(l));
  for (let k = 0; k < rows.length; ++k) {
    const cli = lines[k];
    if (cli.path !== rows[k].path || typeof cli.score !== 'number') {
      console.error(`flawlens score row ${k}: ${JSON.stringify(cli)} does not match ${rows[k].path}`);
      process.exit(1);
    }
    rows[k].cli_score = cli.score;
    // The CLI prints the raw score with 6-9 digits: compare on its scale.
    const d = (Math.abs(rows[k].ort_score - cli.score) * calScale) / Math.max(Math.abs(cli.raw_score), 1e-30);
    rows[k].cli_raw_rel = d;
    worst.cli = Math.max(worst.cli, d);
  }
}

const ok = worst.raw <= opt.tol && worst.map <= opt.tol && worst.batch_raw <= opt.tol &&
  worst.batch_map <= opt.tol && worst.labels === 0 && worst.batch_labels === 0 &&
  (!opt.cli || worst.cli <= opt.tol);
const summary = {
  onnx: onnxPath,
  images: rows.length,
  tol: opt.tol,
  max_raw_score_rel: worst.raw,
  max_score_abs: worst.score,
  max_map_rel: worst.map,
  batch_max_raw_score_rel: worst.batch_raw,
  batch_max_map_rel: worst.batch_map,
  label_mismatches: worst.labels,
  batch_label_mismatches: worst.batch_labels,
  ...(opt.cli ? { max_cli_raw_score_rel: worst.cli } : {}),
  ort_ms_median: rows.map((r) => r.ms).sort((a, b) => a - b)[Math.floor(rows.length / 2)],
  ok,
};
if (opt.json) {
  console.log(JSON.stringify({ summary, rows }));
} else {
  for (const r of rows) {
    console.log(`${r.path}: engine ${r.engine_score.toFixed(6)} ort ${r.ort_score.toFixed(6)}` +
      (opt.cli ? ` cli ${r.cli_score}` : '') +
      ` | raw rel ${r.raw_rel.toExponential(2)} map rel ${r.map_rel.toExponential(2)}` +
      ` label ${r.label_ok ? 'ok' : 'MISMATCH'} | ${r.ms.toFixed(1)} ms`);
  }
  console.log(JSON.stringify(summary));
}
process.exit(ok ? 0 : 1);
