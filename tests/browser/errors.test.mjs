// Errors appear in the page and the page keeps working: camera denied, a
// garbage / truncated model (previous model stays), a corrupt image (gallery
// intact), drag-and-drop, switching to another valid model, wasm failure
// (both engine modules broken; threads.test.mjs breaks only the threaded one).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { waitReady, alertText, galleryItems, waitGalleryCount } from '../../tools/bench/lib/browser.mjs';
import { demoImages } from '../../tools/bench/lib/demo.mjs';
import { startServer } from '../../tools/bench/lib/server.mjs';
import { withCard, withMeta } from './lib/model_edit.mjs';
import { decodePng, writeBmp } from '../../tools/bench/lib/png.mjs';

async function waitAlert(page, re, timeout = 15000) {
  await page.waitForFunction((src) => {
    const a = document.getElementById('alert');
    return !a.hidden && new RegExp(src).test(document.getElementById('alert-text').textContent);
  }, re.source, { timeout });
  return alertText(page);
}

// Drop files on the page the way a drag-and-drop from the desktop does.
async function dropFiles(page, files) {
  // Bytes cross as base64, not as a number array: a model of tens of MB must cross quickly.
  await page.evaluate(async (list) => {
    const dt = new DataTransfer();
    for (const f of list) dt.items.add(new File([Uint8Array.from(atob(f.base64), (c) => c.charCodeAt(0))], f.name, { type: f.type }));
    const target = document.getElementById('dropzone');
    target.dispatchEvent(new DragEvent('dragenter', { bubbles: true, cancelable: true, dataTransfer: dt }));
    target.dispatchEvent(new DragEvent('dragover', { bubbles: true, cancelable: true, dataTransfer: dt }));
    target.dispatchEvent(new DragEvent('drop', { bubbles: true, cancelable: true, dataTransfer: dt }));
  }, files.map((f) => ({ name: f.name, type: f.type || '', base64: Buffer.from(f.buffer).toString('base64') })));
}

export default async function (t) {
  const { good, bad } = demoImages(t.site);
  t.assert(good.length && bad.length, 'demo images needed');

  // ---- 1. camera denied (fake device present, no permission, no auto-accept)
  const b = await t.launch({ camera: 'denied' });
  const page = b.page;
  await page.goto(t.server.url);
  const ready = await waitReady(page);
  t.assert(ready.model === 'ok', `model ready: ${JSON.stringify(ready)}`);
  await page.click('#camera-toggle');
  const camMsg = await waitAlert(page, /camera/i);
  t.log(`camera denied -> "${camMsg}"`);
  t.assert(/denied/i.test(camMsg) && /uploads keep working/i.test(camMsg), `clear camera-denied message: ${camMsg}`);
  t.assert((await page.getAttribute('#stage', 'data-state')) === 'off', 'camera stays off');
  t.assert(!(await page.isDisabled('#camera-toggle')), 'camera button usable again');
  await t.screenshot(page, '01-camera-denied');
  // Uploads still work.
  await page.setInputFiles('#image-input', [good[0], bad[0]]);
  await waitGalleryCount(page, 2);
  let items = await galleryItems(page);
  const before = Object.fromEntries(items.map((i) => [i.name, i.score]));
  t.assert(items.length === 2 && items.every((i) => Number.isFinite(i.score)), 'uploads work after a camera error');

  // ---- 2. garbage model file: clear message, previous model still in use
  const modelBadge = await page.textContent('#model-badge');
  const cardBefore = await page.textContent('#model-card h3');
  await page.setInputFiles('#model-input', { name: 'garbage.safetensors', mimeType: 'application/octet-stream',
                                             buffer: Buffer.from('this is not a model file, just some text\n'.repeat(20)) });
  const garbageMsg = await waitAlert(page, /garbage\.safetensors/);
  t.log(`garbage model -> "${garbageMsg}"`);
  t.assert(/Could not load model/.test(garbageMsg) && /Still using/.test(garbageMsg), `clear model message: ${garbageMsg}`);
  t.assert((await page.textContent('#model-badge')) === modelBadge, 'model badge unchanged');
  t.assert((await page.textContent('#model-card h3')) === cardBefore, 'model card unchanged');
  await t.screenshot(page, '02-garbage-model');
  // A truncated real model, by drag-and-drop.
  const modelBytes = fs.readFileSync(path.join(t.site, 'model', 'default.safetensors'));
  await dropFiles(page, [{ name: 'truncated.safetensors', buffer: modelBytes.subarray(0, Math.floor(modelBytes.length / 2)) }]);
  const truncMsg = await waitAlert(page, /truncated\.safetensors/);
  t.log(`truncated model -> "${truncMsg}"`);
  t.assert((await page.textContent('#model-badge')) === modelBadge, 'model badge unchanged after a truncated model');
  // The previous model still scores the same.
  await page.click('#clear-btn');
  await page.setInputFiles('#image-input', [good[0]]);
  await waitGalleryCount(page, 1);
  items = await galleryItems(page);
  t.assert(Math.abs(items[0].score - before[items[0].name]) < 1e-6 + 1e-4 * Math.abs(before[items[0].name]),
           `same score with the kept model (${items[0].score} vs ${before[items[0].name]})`);

  // ---- 3. corrupt images: message, gallery intact
  const png = fs.readFileSync(good[0]);
  await page.setInputFiles('#image-input', [
    { name: 'corrupt.png', mimeType: 'image/png', buffer: Buffer.concat([png.subarray(0, 8), Buffer.alloc(300, 0x5a)]) },
    { name: 'truncated.png', mimeType: 'image/png', buffer: png.subarray(0, Math.min(200, png.length >> 1)) },
    { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello') },
  ]);
  const imgMsg = await waitAlert(page, /corrupt\.png/);
  t.log(`corrupt images -> "${imgMsg}"`);
  t.assert(/Could not score 3 of 3/.test(imgMsg) && /truncated\.png/.test(imgMsg) && /notes\.txt/.test(imgMsg),
           `message names every bad file: ${imgMsg}`);
  items = await galleryItems(page);
  t.assert(items.length === 1 && items[0].name === path.basename(good[0]), 'gallery intact after corrupt images');
  await t.screenshot(page, '03-corrupt-image');
  // Drag-and-drop of a good image still works afterwards.
  await dropFiles(page, [{ name: path.basename(bad[0]), type: 'image/png', buffer: fs.readFileSync(bad[0]) }]);
  await waitGalleryCount(page, 2);
  items = await galleryItems(page);
  const dropped = items.find((i) => i.name === path.basename(bad[0]));
  t.assert(items.length === 2 && dropped && Math.abs(dropped.score - before[dropped.name]) < 1e-4 * Math.max(1, Math.abs(dropped.score)),
           'dropped image scored like the uploaded one');

  // ---- 4. switching to another valid model (same weights, other card): gallery re-scored
  // (its card says it was recalibrated twice by `flawlens calibrate`: the latest is shown)
  const second = withCard(modelBytes, {
    name: 'second-model',
    recalibrations: [{ at: '2026-01-02T03:04:05Z', images: 12 }, { at: '2026-11-29T10:11:12Z', images: 42 }],
  });
  await page.setInputFiles('#model-input', { name: 'second.safetensors', mimeType: 'application/octet-stream', buffer: second });
  await page.waitForFunction(() => /second-model/.test(document.getElementById('model-badge').textContent), null, { timeout: 15000 });
  await page.waitForFunction(() => /Re-scored/.test(document.getElementById('status').textContent), null, { timeout: 15000 });
  t.assert((await alertText(page)) === '', `no error after a good model: ${await alertText(page)}`);
  const rescored = await galleryItems(page);
  t.assert(rescored.length === 2 && rescored.every((i, k) => Math.abs(i.score - items[k].score) < 1e-4 * Math.max(1, Math.abs(i.score))),
           'same weights -> same scores after re-scoring');
  t.assert(/second-model/.test(await page.textContent('#model-card')), 'model card shows the new model');
  t.assert(/Recalibrated\s*2026-11-29T10:11:12Z on 42 good images \(2 times\)/.test(await page.textContent('#model-card')),
           'model card shows the latest recalibration');
  t.assert(b.consoleErrors.length === 0, `console errors: ${b.consoleErrors.join(' | ')}`);

  // ---- 4b. a fixed-pixel-scale model (preprocess.pixel_scale): an image smaller than the
  // network input is scored on a mirror-padded canvas and its heatmap covers only the image.
  const scaled = withCard(withMeta(modelBytes, 'preprocess', { pixel_scale: 1 }), { name: 'scaled-model' });
  await page.setInputFiles('#model-input', { name: 'scaled.safetensors', mimeType: 'application/octet-stream', buffer: scaled });
  await page.waitForFunction(() => /scaled-model/.test(document.getElementById('model-badge').textContent), null, { timeout: 15000 });
  const src = decodePng(fs.readFileSync(bad[0]));
  const cw = Math.min(120, src.width), ch = Math.min(90, src.height);
  const crop = new Uint8Array(cw * ch * 4);
  for (let y = 0; y < ch; ++y) crop.set(src.rgba.subarray((y * src.width) * 4, (y * src.width + cw) * 4), y * cw * 4);
  await page.click('#clear-btn');
  await page.setInputFiles('#image-input', [{ name: 'small.bmp', mimeType: 'image/bmp', buffer: writeBmp(crop, cw, ch) }]);
  await waitGalleryCount(page, 1);
  const small = await galleryItems(page);
  t.assert(small.length === 1 && Number.isFinite(small[0].score), `small image scored by the pixel-scale model (${JSON.stringify(small)})`);
  t.assert((await alertText(page)) === '', `pixel-scale model: no error (${await alertText(page)})`);
  t.log(`pixel-scale model: ${cw}x${ch} image score ${small[0].score.toFixed(3)}`);
  t.assert(/fixed pixel scale 1/.test(await page.textContent('#model-card')), 'model card states the fixed pixel scale');
  await t.screenshot(page, '03b-pixel-scale-model');
  t.assert(b.consoleErrors.length === 0, `console errors: ${b.consoleErrors.join(' | ')}`);

  // ---- 5. wasm failure: a site whose .wasm is broken
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flawlens-badwasm-'));
  try {
    fs.cpSync(t.site, tmp, { recursive: true });
    // Both modules: the threaded one (isolated pages) falls back to the other.
    for (const f of ['flawlens-core.wasm', 'flawlens-core-mt.wasm']) {
      fs.writeFileSync(path.join(tmp, f), Buffer.from('not wasm at all'));
    }
    const bad = await startServer(tmp, { isolate: t.isolated });
    try {
      const w = await t.launch({ origin: bad.origin });
      await w.page.goto(bad.url);
      const r = await waitReady(w.page);
      t.assert(r.engine === 'error', `engine error shown (${JSON.stringify(r)})`);
      t.log(`broken wasm -> "${r.alert}"`);
      t.assert(/engine could not start/i.test(r.alert), `clear wasm message: ${r.alert}`);
      await t.screenshot(w.page, '04-wasm-failure');
      // The page still responds: an upload gets a clear message instead of hanging.
      await w.page.setInputFiles('#image-input', [good[0]]);
      const m = await waitAlert(w.page, /engine is not available/);
      t.assert(m.length > 0, 'upload without engine -> message');
      t.assert((await galleryItems(w.page)).length === 0, 'nothing added');
    } finally {
      await bad.close();
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
