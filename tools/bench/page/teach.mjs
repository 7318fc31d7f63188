// page_bench teach (not a test): the real page in headless Chromium teaches a
// model from 100 frames of a 640x480 fake webcam playing generated good parts.
//
//   node tools/bench/page_bench.mjs teach [--site build/site] [--flawlens PATH] [--frames 100]
//                                         [--fps 30] [--runs 3] [--mode mt|st] [--out FILE]
//
// --mode mt (default): the server sends the cross-origin isolation headers,
// the page runs the threaded engine (Auto threads); st: no headers and no
// service workers, the single-thread engine.
//
// Per run (fresh browser each time), from the click on "Record good parts":
//   record   until the page holds --frames frames (the camera's frame rate and
//            the backbone's time per frame bound it)
//   fit      click on "Teach" -> the taught model loaded and in use
//   total    record + fit ("teach time")
//   longest main-thread task during recording + fitting (PerformanceObserver
//   'longtask': tasks over 50 ms; none = 0), and the live detection FPS
//   on the taught model right after.
// The good parts come from `flawlens synth` (--flawlens, default
// build/native-release/tools/flawlens).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

import {
  checkMode, clipFromImages, die, f0, f2, launch, loadavg, makeLog, median, options, repo, startServer, waitReady,
} from './common.mjs';

export async function run(argv) {
  const { arg } = options(argv);
  const { say, lines } = makeLog();
  const outFile = arg('--out', '');
  const site = path.resolve(arg('--site', path.join(repo, 'build', 'site')));
  const flawlens = path.resolve(arg('--flawlens', path.join(repo, 'build', 'native-release', 'tools', 'flawlens')));
  const frames = Number(arg('--frames', '100'));
  const fps = Number(arg('--fps', '30'));
  const runs = Number(arg('--runs', '3'));
  const mode = arg('--mode', 'mt');
  checkMode('page_bench teach', mode, ['mt', 'st']);


  if (!fs.existsSync(flawlens)) die('page_bench teach', `no flawlens CLI at ${flawlens} (--flawlens PATH)`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flawlens-teach-bench-'));
  const server = await startServer(site, { isolate: mode === 'mt' });
  try {
    const data = path.join(tmp, 'synth');
    execFileSync(flawlens, ['synth', data, '--train', String(frames + 20), '--val-good', '1', '--val-defect', '1',
                            '--size', '640x480', '--seed', '5'], { stdio: 'pipe' });
    const dir = path.join(data, 'train', 'good');
    const images = fs.readdirSync(dir).filter((f) => f.endsWith('.png')).sort().map((f) => path.join(dir, f));
    const clipFile = path.join(tmp, 'good.y4m');
    const clip = clipFromImages(clipFile, images, { hold: 1, fps, maxSide: 640 });
    say(`page_bench teach: site ${path.relative(repo, site) || '.'}; fake webcam ${clip.width}x${clip.height} @ ${fps} fps, ${clip.frames} distinct ` +
                `good frames; teach ${frames} frames, ${runs} runs; Chromium headless, ${os.cpus().length} cores; mode ${mode}; ` +
                `load average at start ${loadavg()}`);

    const rows = [];
    for (let run = 0; run < runs; ++run) {
      const b = await launch({ camera: 'fake', y4m: clipFile, serviceWorkers: mode === 'mt' ? 'allow' : 'block' });
      try {
        const page = b.page;
        if (run === 0) {
          await page.goto(server.url);
          await waitReady(page, 60000);
          say(await page.textContent('#engine-badge'));
        }
        await page.addInitScript(() => {
          window.__longTasks = [];
          new PerformanceObserver((list) => {
            for (const e of list.getEntries()) window.__longTasks.push({ start: e.startTime, ms: e.duration });
          }).observe({ type: 'longtask', buffered: true });
        });
        await page.goto(server.url);
        const ready = await waitReady(page, 60000);
        if (ready.model !== 'ok') throw new Error(`page not ready: ${JSON.stringify(ready)}`);
        const model = await page.textContent('#model-badge');
        await page.click('#camera-toggle');
        await page.waitForFunction(() => Number(document.getElementById('live-fps').textContent) > 0, null, { timeout: 30000 });
        await page.selectOption('#teach-seconds', '30');
        const t0 = await page.evaluate(() => performance.now());
        await page.click('#teach-record-btn');
        await page.waitForFunction((n) => window.__flawlens.teach.images >= n, frames, { timeout: 120000, polling: 20 });
        await page.click('#teach-record-btn');  // stop
        await page.waitForFunction(() => !window.__flawlens.teach.recording && window.__flawlens.teach.inFlight === 0);
        const t1 = await page.evaluate(() => performance.now());
        const got = await page.evaluate(() => window.__flawlens.teach);
        await page.fill('#teach-name', `bench-${run + 1}`);
        await page.click('#teach-btn');
        await page.waitForFunction((name) => document.getElementById('model-badge').textContent === `Model: ${name}` &&
                                             !window.__flawlens.teach.busy, `bench-${run + 1}`, { timeout: 120000, polling: 20 });
        const t2 = await page.evaluate(() => performance.now());
        const long = await page.evaluate(([a, z]) => window.__longTasks.filter((e) => e.start >= a && e.start <= z), [t0, t2]);
        const longRec = long.filter((e) => e.start <= t1), longFit = long.filter((e) => e.start > t1);
        const alert = await page.evaluate(() => (document.getElementById('alert').hidden ? '' : document.getElementById('alert-text').textContent));
        // Live detection on the taught model.
        const n0 = await page.evaluate(() => window.__flawlens.liveLog.length);
        await page.waitForTimeout(3000);
        const n1 = await page.evaluate(() => window.__flawlens.liveLog.length);
        rows.push({ record: (t1 - t0) / 1000, fit: (t2 - t1) / 1000, total: (t2 - t0) / 1000, frames: got.images,
                    heldOut: got.heldOut, longest: long.reduce((m, e) => Math.max(m, e.ms), 0), longCount: long.length,
                    longestRec: longRec.reduce((m, e) => Math.max(m, e.ms), 0), longestFit: longFit.reduce((m, e) => Math.max(m, e.ms), 0),
                    longRecCount: longRec.length, longFitCount: longFit.length,
                    liveFps: (n1 - n0) / 3, model, alert });
        const r = rows[rows.length - 1];
        say(`run ${run + 1}: record ${f2(r.record)} s (${r.frames} frames, ${r.heldOut} held out), fit ${f2(r.fit)} s, ` +
                    `total ${f2(r.total)} s; longest main-thread task ${f0(r.longest)} ms (${r.longCount} over 50 ms: ` +
                    `recording ${r.longRecCount}, longest ${f0(r.longestRec)} ms; fit + load ${r.longFitCount}, longest ` +
                    `${f0(r.longestFit)} ms); ` +
                    `live ${r.liveFps.toFixed(1)} fps after${r.alert ? `; alert: ${r.alert}` : ''}`);
      } finally {
        await b.close();
      }
    }
    const col = (k) => rows.map((r) => r[k]);
    say(`teach from model ${rows[0]?.model.replace(/^Model: /, '')}`);
    say(`record ${frames} frames  median ${f2(median(col('record')))} s  (${col('record').map(f2).join(' ')})`);
    say(`fit + load          median ${f2(median(col('fit')))} s  (${col('fit').map(f2).join(' ')})`);
    say(`teach time (total)  median ${f2(median(col('total')))} s  (${col('total').map(f2).join(' ')}); target <= 5 s`);
    say(`load average at the end ${loadavg()}`);
    say(`longest main-thread task during teaching  max ${f0(Math.max(...col('longest')))} ms  (${col('longest').map(f0).join(' ')}); ` +
                `while recording max ${f0(Math.max(...col('longestRec')))} ms, while fitting + loading max ${f0(Math.max(...col('longestFit')))} ms`);
  } finally {
    await server.close();
    fs.rmSync(tmp, { recursive: true, force: true });
    if (outFile) fs.writeFileSync(outFile, `${lines.join('\n')}\n`);
  }
}
