#!/usr/bin/env node
// node tests/js/write_model.mjs SPEC.json OUT: writes the model file of a spec
// with tools/bench/lib/model_writer.mjs. SPEC.json: {graph, preprocess, postprocess,
// calibration, card} (JSON text each) and tensors [{name, shape, data}]: the
// C++ ModelSpec, so that a test can compare the two writers byte for byte.
import fs from 'node:fs';

import { writeModel } from '../../tools/bench/lib/model_writer.mjs';

const [specPath, outPath] = process.argv.slice(2);
if (!specPath || !outPath) {
  console.error('usage: write_model.mjs SPEC.json OUT');
  process.exit(2);
}
const spec = JSON.parse(fs.readFileSync(specPath, 'utf8'));
fs.writeFileSync(outPath, writeModel(spec));
