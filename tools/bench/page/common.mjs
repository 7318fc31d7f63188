// What the page benchmark's cases share: the repository root, options,
// statistics and formatting, the log that --out writes, and the browser
// helpers (headless Chromium with a fake webcam, the static server).
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

// The static server, headless Chromium with a fake webcam and the demo
// images: tools/bench/lib/ (playwright-core comes from tests/node_modules:
// cd tests && npm ci).
export { startServer } from '../lib/server.mjs';
export { launch, waitReady } from '../lib/browser.mjs';
export { clipFromImages } from '../lib/clip.mjs';
export { demoImages } from '../lib/demo.mjs';

// `--name value` options; a missing or empty value gives the default.
export function options(argv) {
  return {
    arg: (name, dflt) => { const i = argv.indexOf(name); return i >= 0 && argv[i + 1] ? argv[i + 1] : dflt; },
    flag: (name) => argv.includes(name),
  };
}

export const median = (a) => { const s = [...a].sort((x, y) => x - y); return s.length ? s[s.length >> 1] : NaN; };
const fixed = (d) => (v) => (Number.isFinite(v) ? v.toFixed(d) : 'n/a');
export const f0 = fixed(0), f1 = fixed(1), f2 = fixed(2);
export const mb = (b) => (Number.isFinite(b) ? `${(b / 1048576).toFixed(2)} MiB` : 'n/a');
export const loadavg = () => os.loadavg().map((v) => v.toFixed(2)).join(' ');

// Prints and keeps every line; write() saves them (--out FILE).
export function makeLog() {
  const lines = [];
  return {
    say: (s) => { console.log(s); lines.push(s); },
    lines,
  };
}

export function die(prefix, message) {
  console.error(`${prefix}: ${message}`);
  process.exit(2);
}

// mt: the server sends the cross-origin isolation headers, the page runs the
// threaded engine; st: no headers and no service workers, the single-thread
// engine.
export function checkMode(prefix, mode, allowed) {
  if (!allowed.includes(mode)) die(prefix, `--mode must be ${allowed.join(', ').replace(/, ([^,]*)$/, ' or $1')}, got '${mode}'`);
}
