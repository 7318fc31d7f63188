// page_bench load (not a test): the real page in headless Chromium with a fake
// webcam playing the demo images, the default model and the live heatmap.
//
//   node tools/bench/page_bench.mjs load [--site build/site] [--seconds 30] [--loads 5] [--fps 30]
//                                       [--camera WxH] [--mode mt|st|both] [--profile] [--out FILE]
//
// --camera WxH  the fake webcam's size: every demo image is scaled (stretched)
//               to WxH, e.g. 640x480; default: the demo images' own size, the
//               longer side at most 640.
// --mode        mt: the server sends the cross-origin isolation headers, so
//               the page runs the threaded engine (flawlens-core-mt, Auto
//               threads); st: no headers and no service workers (a browser
//               where the page cannot be isolated), the single-thread engine;
//               both (default): mt then st, in the same run.
// --profile     per page load, where the time to the first score goes: the
//               worker's start-up steps, the model's download and load, the
//               camera, the first detection.
// --out FILE    also write everything printed to FILE.
//
// Prints medians of: page load -> engine ready / model ready / first live
// score (camera started as soon as the page is interactive) for a first visit
// (fresh browser, nothing cached), a first visit in a browser that is running
// already (it loaded a blank page from another local server first: its
// network stack is up, nothing of the site is cached) and a repeat visit (the
// same browser loads the page again from a server that allows caching: the
// browser's cache, and the compiled wasm code it keeps with it), sustained live
// FPS (per 1-s window) and per-frame latency (capture -> result on screen) and
// engine time, plus JS heap (page, after GC) and wasm memory at the start
// and end of the session (leak check).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import {
  checkMode, clipFromImages, demoImages, die, f0, f1, launch, loadavg, makeLog, mb, median, options, repo,
  startServer,
} from './common.mjs';

export async function run(argv) {
  const { arg, flag } = options(argv);
  const profile = flag('--profile');
  const { say, lines } = makeLog();
  const site = path.resolve(arg('--site', path.join(repo, 'build', 'site')));
  const seconds = Number(arg('--seconds', '30'));
  const loads = Number(arg('--loads', '5'));
  const fps = Number(arg('--fps', '30'));
  const camera = arg('--camera', '');
  const modeArg = arg('--mode', 'both');
  const outFile = arg('--out', '');

  checkMode('page_bench load', modeArg, ['mt', 'st', 'both']);
  let camSize = null;
  if (camera) {
    const m = /^(\d+)x(\d+)$/.exec(camera);
    if (!m || Number(m[1]) % 2 || Number(m[2]) % 2 || Number(m[1]) < 2 || Number(m[2]) < 2) {
      die('page_bench load', `--camera must be WxH with even sizes (e.g. 640x480), got '${camera}'`);
    }
    camSize = { width: Number(m[1]), height: Number(m[2]) };
  }
  const modes = modeArg === 'both' ? ['mt', 'st'] : [modeArg];


  const { good, bad } = demoImages(site);
  if (!good.length) die('page_bench load', `no demo images in ${site}/model/demo`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flawlens-bench-'));
  const clipFile = path.join(tmp, 'clip.y4m');
  const clip = clipFromImages(clipFile, [...good, ...bad], { hold: Math.max(1, Math.round(fps / 2)), fps, maxSide: 640,
                                                             ...(camSize || {}) });
  say(`page_bench load: site ${path.relative(repo, site) || site}; fake webcam ${clip.width}x${clip.height} @ ${fps} fps ` +
      `(${clip.frames} frames${camSize ? ', demo images stretched to it' : ''}); modes ${modes.join(', ')}; ${loads} page loads, ` +
      `${seconds} s session each; Chromium headless, ${os.cpus().length} cores; load average at start ${loadavg()}`);

  async function heap(page, cdp) {
    await cdp.send('HeapProfiler.collectGarbage');
    const h = await cdp.send('Runtime.getHeapUsage');
    const stats = await page.evaluate(() => window.__flawlens.stats());
    return { jsHeap: h.usedSize, wasm: stats ? stats.wasmBytes : NaN };
  }

  // mt: the isolated server; st: a plain server and no service workers. st also
  // marks the tab as having tried isolation already (js/coi.mjs), as a browser
  // where isolation is impossible ends up: the page then starts its engine at
  // once instead of waiting for the service worker's answer.
  async function open(mode, server, opts = {}) {
    const b = await launch({ camera: 'fake', y4m: clipFile, serviceWorkers: mode === 'mt' ? 'allow' : 'block', ...opts });
    if (mode === 'st') await b.page.addInitScript(() => sessionStorage.setItem('flawlens.coi-reloaded', '1'));
    return b;
  }

  // Where one page load's time went (page clock, ms since navigation start).
  async function loadProfile(page) {
    return page.evaluate(async () => {
      const mark = (n) => performance.getEntriesByName(n)[0]?.startTime;
      const stats = await window.__flawlens.stats();
      const worker = Object.fromEntries((stats.timeline || []).map((e) => [e.name, e.t - performance.timeOrigin]));
      const res = (re) => performance.getEntriesByType('resource').find((e) => re.test(e.name));
      const model = res(/default\.safetensors$/);
      const nav = performance.getEntriesByType('navigation')[0];
      const info = window.__flawlens.modelInfo;
      return {
        html: nav.responseEnd, dcl: nav.domContentLoadedEventStart, boot: mark('flawlens:boot'),
        workerStart: worker['worker-start'], init: worker.init, engineJs: worker['engine-js-loaded'],
        coreJs: worker['core-js-loaded'], wasm: worker['wasm-compiled'], engine: mark('flawlens:engine-ready'),
        modelFetchStart: model?.startTime, modelFetchEnd: model?.responseEnd, modelLoadMs: info?.loadMs,
        model: mark('flawlens:model-ready'), camera: mark('flawlens:camera-on'), first: window.__flawlens.firstScoreAt,
        firstEngineMs: window.__flawlens.liveLog[0]?.totalMs, firstLatencyMs: window.__flawlens.liveLog[0]?.latencyMs,
        module: stats.module, threads: stats.threads,
      };
    });
  }

  async function runMode(mode) {
    const server = await startServer(site, { isolate: mode === 'mt' });
    const cached = await startServer(site, { isolate: mode === 'mt', cache: true });
    const blankDir = fs.mkdtempSync(path.join(os.tmpdir(), 'flawlens-blank-'));
    fs.writeFileSync(path.join(blankDir, 'index.html'), '<!doctype html><title>blank</title>');
    const blank = await startServer(blankDir);
    try {
      // 1. Page load -> ready / first score, `loads` times (fresh browser each
      // time: first visit; then a repeat visit in that browser).
      const visits = { first: { engine: [], model: [], score: [] }, warm: { engine: [], model: [], score: [] },
                       repeat: { engine: [], model: [], score: [] } };
      let engineName = '';
      const visit = async (b, srv, kind, i) => {
        await b.page.goto(srv.url);
        await b.page.waitForFunction(() => window.__flawlens && window.__flawlens.firstScoreAt !== null, null, { timeout: 60000 });
        const r = await loadProfile(b.page);
        engineName = await b.page.textContent('#engine-badge');
        visits[kind].engine.push(r.engine); visits[kind].model.push(r.model); visits[kind].score.push(r.first);
        return r;
      };
      for (let i = 0; i < loads; ++i) {
        const b = await open(mode, server);
        try {
          await b.page.addInitScript(() => {
            document.addEventListener('DOMContentLoaded', () => document.getElementById('camera-toggle').click());
          });
          const r = await visit(b, server, 'first', i);
          if (profile) {
            say(`  [${mode}] load ${i + 1}: html ${f0(r.html)}, boot ${f0(r.boot)}, DOMContentLoaded ${f0(r.dcl)}; worker: ` +
                `start ${f0(r.workerStart)}, init ${f0(r.init)}, engine.mjs ${f0(r.engineJs)}, module JS ${f0(r.coreJs)}, ` +
                `wasm compiled ${f0(r.wasm)}, engine ready ${f0(r.engine)}; model: fetch ${f0(r.modelFetchStart)}-` +
                `${f0(r.modelFetchEnd)}, load in the worker ${f1(r.modelLoadMs)} ms, ready ${f0(r.model)}; camera on ` +
                `${f0(r.camera)}; first score ${f0(r.first)} (engine ${f1(r.firstEngineMs)} ms, latency ${f1(r.firstLatencyMs)} ms); ` +
                `${r.module} x${r.threads}`);
          }
        } finally {
          await b.close();
        }
        // First visit in a running browser.
        const w = await open(mode, server);
        try {
          await w.page.goto(blank.url);
          await w.page.addInitScript(() => {
            document.addEventListener('DOMContentLoaded', () => document.getElementById('camera-toggle').click());
          });
          const r = await visit(w, server, 'warm', i);
          if (profile) {
            say(`  [${mode}] first visit, browser running ${i + 1}: boot ${f0(r.boot)}; worker start ${f0(r.workerStart)}, ` +
                `engine ready ${f0(r.engine)}; model load in the worker ${f1(r.modelLoadMs)} ms, ready ${f0(r.model)}; ` +
                `camera on ${f0(r.camera)}; first score ${f0(r.first)} (engine ${f1(r.firstEngineMs)} ms)`);
          }
        } finally {
          await w.close();
        }
        // Repeat visit: the first load fills the cache, the second is timed.
        const c = await open(mode, cached);
        try {
          await c.page.addInitScript(() => {
            document.addEventListener('DOMContentLoaded', () => document.getElementById('camera-toggle').click());
          });
          await visit(c, cached, 'repeat', i);
          visits.repeat.engine.pop(); visits.repeat.model.pop(); visits.repeat.score.pop();
          await c.page.waitForTimeout(1000);  // the browser stores the compiled wasm code after the first visit
          const r = await visit(c, cached, 'repeat', i);
          if (profile) {
            say(`  [${mode}] repeat visit ${i + 1}: boot ${f0(r.boot)}; worker start ${f0(r.workerStart)}, engine ready ` +
                `${f0(r.engine)}; model load in the worker ${f1(r.modelLoadMs)} ms, ready ${f0(r.model)}; camera on ` +
                `${f0(r.camera)}; first score ${f0(r.first)} (engine ${f1(r.firstEngineMs)} ms)`);
          }
        } finally {
          await c.close();
        }
      }
      say(`[${mode}] ${engineName}`);
      for (const [kind, v] of Object.entries(visits)) {
        const label = { first: 'first visit, fresh browser  ', warm: 'first visit, browser running', repeat: 'repeat visit                ' }[kind];
        say(`[${mode}] ${label}: load -> engine ready  median ${f1(median(v.engine))} ms  (${v.engine.map(f1).join(' ')})`);
        say(`[${mode}] ${label}: load -> model ready   median ${f1(median(v.model))} ms  (${v.model.map(f1).join(' ')})`);
        say(`[${mode}] ${label}: load -> first score   median ${f1(median(v.score))} ms  (${v.score.map(f1).join(' ')})`);
      }

      // 2. Sustained live session.
      const b = await open(mode, server);
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
        say(`[${mode}] live FPS               median ${f1(median(windows))} /s over ${seconds} 1-s windows ` +
            `(min ${Math.min(...windows)}, max ${Math.max(...windows)}; camera ${fps} fps; page shows ${shownFps})`);
        say(`[${mode}] frame latency          median ${f1(median(log.map((e) => e.latencyMs)))} ms (capture -> result, incl. transfer)`);
        say(`[${mode}] engine time            median ${f1(median(log.map((e) => e.totalMs)))} ms (preprocess + network + postprocess)`);
        say(`[${mode}] frames                 ${seen1[0] - seen0[0]} video frames, ${log.length} scored, ` +
            `${seen1[1] - seen0[1]} dropped while the worker was busy (never queued); ` +
            `${log.filter((e) => e.anomalous).length} anomalous`);
        say(`[${mode}] JS heap (page, GC'd)   start ${mb(start.jsHeap)}  end ${mb(end.jsHeap)}  delta ${mb(end.jsHeap - start.jsHeap)}`);
        say(`[${mode}] wasm memory (worker)   start ${mb(start.wasm)}  end ${mb(end.wasm)}  delta ${mb(end.wasm - start.wasm)}`);
      } finally {
        await b.close();
      }
    } finally {
      await server.close();
      await cached.close();
      await blank.close();
      fs.rmSync(blankDir, { recursive: true, force: true });
    }
  }

  try {
    for (const mode of modes) await runMode(mode);
    say(`load average at the end ${loadavg()}`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
    if (outFile) fs.writeFileSync(outFile, `${lines.join('\n')}\n`);
  }
}
