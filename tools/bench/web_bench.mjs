#!/usr/bin/env node
// Web benchmark (not a test): the real page in headless Chromium with a fake
// webcam playing the demo images, the default model and the live heatmap.
//
//   node tools/bench/web_bench.mjs [--site build/site] [--seconds 30] [--loads 5] [--fps 30]
//
// Prints medians of: page load -> engine ready / model ready / first live
// score (camera started as soon as the page is interactive), sustained live
// FPS (per 1-s window) and per-frame latency (capture -> result on screen) and
// engine time, plus JS heap (page, after GC) and wasm memory at the start
// and end of the session (leak check). Uses the browser-test helpers and
// playwright-core from tests/ (cd tests && npm ci).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const { startServer } = await import(path.join(repo, 'tests/browser/lib/server.mjs'));
const { launch } = await import(path.join(repo, 'tests/browser/lib/browser.mjs'));
const { demoImages } = await import(path.join(repo, 'tests/browser/lib/demo.mjs'));
const { clipFromImages } = await import(path.join(repo, 'tests/browser/lib/clip.mjs'));

const argv = process.argv.slice(2);
const arg = (n, d) => { const i = argv.indexOf(n); return i >= 0 && argv[i + 1] ? argv[i + 1] : d; };
const site = path.resolve(arg('--site', path.join(repo, 'build', 'site')));
const seconds = Number(arg('--seconds', '30'));
const loads = Number(arg('--loads', '5'));
const fps = Number(arg('--fps', '30'));

const median = (a) => { const s = [...a].sort((x, y) => x - y); return s.length ? s[s.length >> 1] : NaN; };
const f1 = (v) => (Number.isFinite(v) ? v.toFixed(1) : 'n/a');
const mb = (b) => (Number.isFinite(b) ? `${(b / 1048576).toFixed(2)} MiB` : 'n/a');

const { good, bad } = demoImages(site);
if (!good.length) { console.error(`no demo images in ${site}/model/demo`); process.exit(2); }
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flawlens-bench-'));
const clipFile = path.join(tmp, 'clip.y4m');
const clip = clipFromImages(clipFile, [...good, ...bad], { hold: Math.max(1, Math.round(fps / 2)), fps, maxSide: 640 });
const server = await startServer(site);
console.log(`web_bench: site ${site}; fake webcam ${clip.width}x${clip.height} @ ${fps} fps (${clip.frames} frames); ` +
            `${loads} page loads, ${seconds} s session; Chromium headless, ${os.cpus().length} cores`);

async function heap(page, cdp) {
  await cdp.send('HeapProfiler.collectGarbage');
  const h = await cdp.send('Runtime.getHeapUsage');
  const stats = await page.evaluate(() => window.__flawlens.stats());
  return { jsHeap: h.usedSize, wasm: stats ? stats.wasmBytes : NaN };
}

try {
  // 1. Page load -> ready / first score, `loads` times (fresh browser each time: no cache).
  const tEngine = [], tModel = [], tFirst = [];
  for (let i = 0; i < loads; ++i) {
    const b = await launch({ camera: 'fake', y4m: clipFile });
    try {
      await b.page.addInitScript(() => {
        document.addEventListener('DOMContentLoaded', () => document.getElementById('camera-toggle').click());
      });
      await b.page.goto(server.url);
      await b.page.waitForFunction(() => window.__flawlens && window.__flawlens.firstScoreAt !== null, null, { timeout: 60000 });
      const r = await b.page.evaluate(() => {
        const m = (n) => performance.getEntriesByName(n)[0]?.startTime;
        return { engine: m('flawlens:engine-ready'), model: m('flawlens:model-ready'), first: window.__flawlens.firstScoreAt };
      });
      tEngine.push(r.engine); tModel.push(r.model); tFirst.push(r.first);
    } finally {
      await b.close();
    }
  }
  console.log(`load -> engine ready   median ${f1(median(tEngine))} ms  (${tEngine.map(f1).join(' ')})`);
  console.log(`load -> model ready    median ${f1(median(tModel))} ms  (${tModel.map(f1).join(' ')})`);
  console.log(`load -> first score    median ${f1(median(tFirst))} ms  (${tFirst.map(f1).join(' ')})`);

  // 2. Sustained live session.
  const b = await launch({ camera: 'fake', y4m: clipFile });
  try {
    const page = b.page;
    const cdp = await b.context.newCDPSession(page);
    await page.goto(server.url);
    await page.waitForFunction(() => document.getElementById('model-badge').dataset.state === 'ok', null, { timeout: 60000 });
    await page.click('#camera-toggle');
    await page.waitForFunction(() => window.__flawlens.liveLog.length > 5, null, { timeout: 30000 });
    await page.waitForTimeout(1000);
    const start = await heap(page, cdp);
    const t0 = await page.evaluate(() => performance.now());
    const seen0 = await page.evaluate(() => [window.__flawlens.framesSeen, window.__flawlens.framesDropped]);
    await page.waitForTimeout(seconds * 1000);
    const log = await page.evaluate((from) => window.__flawlens.liveLog.filter((e) => e.t >= from), t0);
    const seen1 = await page.evaluate(() => [window.__flawlens.framesSeen, window.__flawlens.framesDropped]);
    const end = await heap(page, cdp);
    const windows = [];
    for (let s = 0; s < seconds; ++s) {
      windows.push(log.filter((e) => e.t >= t0 + s * 1000 && e.t < t0 + (s + 1) * 1000).length);
    }
    const shownFps = await page.textContent('#live-fps');
    console.log(`live FPS               median ${f1(median(windows))} /s over ${seconds} 1-s windows ` +
                `(min ${Math.min(...windows)}, max ${Math.max(...windows)}; camera ${fps} fps; page shows ${shownFps})`);
    console.log(`frame latency          median ${f1(median(log.map((e) => e.latencyMs)))} ms (capture -> result, incl. transfer)`);
    console.log(`engine time            median ${f1(median(log.map((e) => e.totalMs)))} ms (preprocess + network + postprocess)`);
    console.log(`frames                 ${seen1[0] - seen0[0]} video frames, ${log.length} scored, ` +
                `${seen1[1] - seen0[1]} dropped while the worker was busy (never queued); ` +
                `${log.filter((e) => e.anomalous).length} anomalous`);
    console.log(`JS heap (page, GC'd)   start ${mb(start.jsHeap)}  end ${mb(end.jsHeap)}  delta ${mb(end.jsHeap - start.jsHeap)}`);
    console.log(`wasm memory (worker)   start ${mb(start.wasm)}  end ${mb(end.wasm)}  delta ${mb(end.wasm - start.wasm)}`);
  } finally {
    await b.close();
  }
} finally {
  await server.close();
  fs.rmSync(tmp, { recursive: true, force: true });
}
