// The two engine modules: a cross-origin isolated page runs the threaded one
// (flawlens-core-mt, Auto = min(cores, 4) threads), a page that is not runs
// the single-thread one, and both give the same scores and maps for the same
// images (the executor's row bands are bit-equal to one thread). The badge
// says which, truthfully. The threads setting applies without losing the
// model or the gallery and is remembered; a host without isolation headers
// gets isolated by coi-sw.js with exactly one reload; a broken threaded module
// falls back to the single-thread one. A webcam smoke run in the mode the
// rest of the suite does not use (run.mjs --isolation).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { waitReady, alertText, waitGalleryCount } from '../../tools/bench/lib/browser.mjs';
import { demoImages } from '../../tools/bench/lib/demo.mjs';
import { clipFromImages } from '../../tools/bench/lib/clip.mjs';
import { startServer } from '../../tools/bench/lib/server.mjs';

async function engineState(page) {
  return page.evaluate(async () => ({
    badge: document.getElementById('engine-badge').textContent,
    isolated: globalThis.crossOriginIsolated,
    cores: navigator.hardwareConcurrency,
    engine: window.__flawlens.engine,
    worker: await window.__flawlens.stats(),  // what the worker itself reports
    select: document.getElementById('threads-select').value,
    selectDisabled: document.getElementById('threads-select').disabled,
    options: [...document.getElementById('threads-select').options].map((o) => o.value),
  }));
}

async function scoreImages(t, page, images) {
  await page.setInputFiles('#image-input', images);
  await waitGalleryCount(page, images.length);
  const results = await page.evaluate(() => window.__flawlens.galleryResults());
  t.assert(results.length === images.length && results.every((r) => Number.isFinite(r.score) && r.map && r.map.length > 0),
           `every image scored with a map (${results.length} of ${images.length})`);
  return results;
}

// Scores and every map value equal (bit for bit: float32 values through JSON).
function compareResults(t, a, b, what) {
  t.assert(a.length === b.length, `${what}: same number of results`);
  let worst = 0;
  for (let i = 0; i < a.length; ++i) {
    t.assert(a[i].name === b[i].name, `${what}: same images (${a[i].name} vs ${b[i].name})`);
    t.assert(a[i].mapWidth === b[i].mapWidth && a[i].mapHeight === b[i].mapHeight, `${what}: same map size`);
    worst = Math.max(worst, Math.abs(a[i].score - b[i].score), Math.abs(a[i].rawScore - b[i].rawScore));
    for (let k = 0; k < a[i].map.length; ++k) worst = Math.max(worst, Math.abs(a[i].map[k] - b[i].map[k]));
  }
  t.assert(worst === 0, `${what}: scores and maps are identical (largest difference ${worst})`);
  return worst;
}

export default async function (t) {
  const { good, bad } = demoImages(t.site);
  const images = [...good, ...bad];
  t.assert(images.length >= 2, 'demo images needed');
  const isolatedServer = t.isolated ? t.server : await startServer(t.site, { isolate: true });
  const plainServer = t.isolated ? await startServer(t.site) : t.server;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flawlens-threads-'));
  try {
    // ---- 1. isolated: the threaded module, Auto threads.
    const a = await t.launch({ origin: isolatedServer.origin, serviceWorkers: 'allow' });
    await a.page.goto(isolatedServer.url);
    t.assert((await waitReady(a.page)).model === 'ok', 'isolated page: model ready');
    const sa = await engineState(a.page);
    const auto = Math.min(sa.cores, 4);
    t.log(`isolated: ${sa.badge}; worker ${JSON.stringify({ module: sa.worker.module, threads: sa.worker.threads })}, ` +
          `${sa.cores} cores, options ${sa.options.join(' ')}`);
    t.assert(sa.isolated === true, 'the page is cross-origin isolated');
    if (sa.cores > 1) {
      t.assert(sa.worker.module === 'mt' && sa.worker.threads === auto,
               `the worker runs the threaded module with ${auto} threads (${JSON.stringify(sa.worker)})`);
      t.assert(sa.badge === `Engine: wasm SIMD · ${auto} threads`, `badge tells the truth: "${sa.badge}"`);
      t.assert(!sa.selectDisabled && sa.select === 'auto' && sa.options.includes(String(Math.min(sa.cores, 8))),
               `threads setting offers Auto and 1..cores (${sa.options.join(' ')})`);
    }
    const mt = await scoreImages(t, a.page, images);

    // The setting: 1 thread, applied at once; the gallery and the model stay.
    const modelBefore = await a.page.textContent('#model-badge');
    await a.page.selectOption('#threads-select', '1');
    await a.page.waitForFunction(() => /· 1 thread$/.test(document.getElementById('engine-badge').textContent), null,
                                 { timeout: 15000 });
    const s1 = await engineState(a.page);
    t.assert(s1.worker.threads === 1 && s1.worker.module === sa.worker.module, `worker now runs 1 thread (${JSON.stringify(s1.worker)})`);
    t.assert((await a.page.textContent('#model-badge')) === modelBefore, 'the model stays loaded');
    t.assert((await a.page.locator('#gallery .thumb').count()) === images.length, 'the gallery stays');
    await a.page.click('#clear-btn');
    const one = await scoreImages(t, a.page, images);
    compareResults(t, mt, one, `${sa.worker.threads} threads vs 1 thread`);
    // Remembered across a reload.
    await a.page.reload();
    await waitReady(a.page);
    const s2 = await engineState(a.page);
    t.assert(s2.select === '1' && s2.worker.threads === 1 && /· 1 thread$/.test(s2.badge),
             `the setting is remembered (${s2.select}, ${s2.badge})`);
    await a.page.selectOption('#threads-select', 'auto');
    await a.page.waitForFunction((n) => document.getElementById('engine-badge').textContent.endsWith(`· ${n} thread${n === 1 ? '' : 's'}`),
                                 sa.worker.threads, { timeout: 15000 });
    t.assert((await alertText(a.page)) === '', `no error: ${await alertText(a.page)}`);
    t.assert(a.consoleErrors.length === 0, `console errors: ${a.consoleErrors.join(' | ')}`);
    await t.screenshot(a.page, '01-isolated-threads', { fullPage: true });
    await a.close();

    // ---- 2. not isolated (no headers, no service workers): the single-thread module.
    const b = await t.launch({ origin: plainServer.origin, serviceWorkers: 'block' });
    await b.page.goto(plainServer.url);
    t.assert((await waitReady(b.page)).model === 'ok', 'plain page: model ready');
    const sb = await engineState(b.page);
    t.log(`not isolated: ${sb.badge}; worker ${JSON.stringify({ module: sb.worker.module, threads: sb.worker.threads })}`);
    t.assert(sb.isolated === false && sb.worker.module === 'st' && sb.worker.threads === 1, `single-thread module (${JSON.stringify(sb.worker)})`);
    t.assert(sb.badge === 'Engine: wasm SIMD · 1 thread (page not cross-origin isolated)', `badge tells the truth: "${sb.badge}"`);
    t.assert(sb.selectDisabled && /cross-origin isolated/.test(await b.page.textContent('#threads-hint')),
             'the threads setting is disabled and says why');
    const st = await scoreImages(t, b.page, images);
    compareResults(t, mt, st, `threaded module (${sa.worker.threads} threads) vs single-thread module`);
    t.log(`${images.length} images: threaded and single-thread modules give identical scores and maps`);
    t.assert(b.consoleErrors.length === 0, `console errors: ${b.consoleErrors.join(' | ')}`);
    await b.close();

    // ---- 3. live webcam in the mode the rest of the suite does not run.
    const clipFile = path.join(tmp, 'clip.y4m');
    clipFromImages(clipFile, images, { hold: 5, fps: 15 });
    const other = t.isolated ? plainServer : isolatedServer;
    const c = await t.launch({ origin: other.origin, camera: 'fake', y4m: clipFile,
                               serviceWorkers: t.isolated ? 'block' : 'allow' });
    await c.page.goto(other.url);
    await waitReady(c.page);
    const sc = await engineState(c.page);
    await c.page.click('#camera-toggle');
    await c.page.waitForFunction(() => window.__flawlens.liveLog.length >= 20, null, { timeout: 30000 });
    const live = await c.page.evaluate(() => ({
      log: window.__flawlens.liveLog.slice(-20), fps: document.getElementById('live-fps').textContent,
      seen: window.__flawlens.framesSeen, dropped: window.__flawlens.framesDropped,
    }));
    t.log(`webcam (${sc.worker.module}, ${sc.worker.threads} thread(s)): fps ${live.fps}, ${live.seen} frames seen, ` +
          `${live.dropped} dropped while busy`);
    t.assert(live.log.every((e) => Number.isFinite(e.score)) && Number(live.fps) > 0, 'live scores and fps');
    await c.page.click('#camera-toggle');
    t.assert((await alertText(c.page)) === '', `no error: ${await alertText(c.page)}`);
    t.assert(c.consoleErrors.length === 0, `console errors: ${c.consoleErrors.join(' | ')}`);
    await c.close();

    // ---- 4. a host without isolation headers, service workers allowed:
    // coi-sw.js isolates the page with one reload, and no more.
    const d = await t.launch({ origin: plainServer.origin, serviceWorkers: 'allow' });
    let loads = 0;
    d.page.on('load', () => { loads += 1; });
    await d.page.goto(plainServer.url);
    await d.page.waitForFunction(() => document.getElementById('model-badge')?.dataset.state === 'ok', null, { timeout: 30000 });
    await d.page.waitForTimeout(1500);
    const sd = await engineState(d.page);
    t.log(`header-less host: ${loads} loads; ${sd.badge}`);
    t.assert(loads === 2, `one reload to become isolated, then none (${loads} loads)`);
    t.assert(sd.isolated === true && (sd.cores < 2 || sd.worker.module === 'mt'), `isolated by the service worker (${sd.badge})`);
    await d.page.goto(plainServer.url);  // a later visit: isolated at once
    await waitReady(d.page);
    await d.page.waitForTimeout(500);
    t.assert(loads === 3 && (await d.page.evaluate(() => crossOriginIsolated)), `a later visit needs no reload (${loads} loads)`);
    await d.close();

    // ---- 5. a broken threaded module (its wasm damaged, or its pthread
    // worker script missing): the single-thread one takes over.
    for (const damage of ['wasm', 'worker']) {
      const site = path.join(tmp, `site-${damage}`);
      fs.cpSync(t.site, site, { recursive: true });
      if (damage === 'wasm') fs.writeFileSync(path.join(site, 'flawlens-core-mt.wasm'), Buffer.from('not wasm at all'));
      else fs.rmSync(path.join(site, 'flawlens-core-mt.worker.js'));
      const broken = await startServer(site, { isolate: true });
      try {
        const e = await t.launch({ origin: broken.origin });
        await e.page.goto(broken.url);
        t.assert((await waitReady(e.page)).model === 'ok', `broken threaded module (${damage}): the page still works`);
        const se = await engineState(e.page);
        t.log(`threaded module's ${damage} broken: ${se.badge} (${await e.page.getAttribute('#engine-badge', 'title')})`);
        if (se.cores > 1) {
          t.assert(se.worker.module === 'st' && /1 thread \(threaded module failed to load\)/.test(se.badge),
                   `falls back to the single-thread module and says so (${se.badge})`);
        }
        const fb = await scoreImages(t, e.page, images.slice(0, 2));
        compareResults(t, st.filter((r) => fb.some((x) => x.name === r.name)), fb, 'fallback module');
        await e.close();
      } finally {
        await broken.close();
      }
    }
  } finally {
    if (isolatedServer !== t.server) await isolatedServer.close();
    if (plainServer !== t.server) await plainServer.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
