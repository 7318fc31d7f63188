// Uploads: demo images (good vs defective) are ranked and labelled correctly;
// detail view, CSV export, "Try demo images", other formats, real photos,
// and the page keeps working offline once loaded.
import fs from 'node:fs';
import path from 'node:path';
import { waitReady, galleryItems, waitGalleryCount, alertText } from '../../tools/bench/lib/browser.mjs';
import { demoImages, realPhotos, kDataRoot } from '../../tools/bench/lib/demo.mjs';
import { decodePng, writeBmp } from '../../tools/bench/lib/png.mjs';

// 24-bit BMP from RGBA (bottom-up rows, 4-byte aligned).

export default async function (t) {
  const { good, bad } = demoImages(t.site);
  t.assert(good.length >= 1 && bad.length >= 1,
           `the site needs good_* and defective demo images in model/demo (found ${good.length} good, ${bad.length} defective)`);
  const b = await t.launch({});
  const page = b.page;
  await page.goto(t.server.url);
  const ready = await waitReady(page);
  t.assert(ready.engine === 'ok' && ready.model === 'ok', `engine/model not ready: ${JSON.stringify(ready)}`);
  const simdText = await page.textContent('#engine-badge');
  t.assert(/SIMD/.test(simdText), `engine badge should state WebAssembly SIMD, got "${simdText}"`);
  await t.screenshot(page, '01-ready', { fullPage: true });

  // 1. Upload all demo images through the file input.
  await page.setInputFiles('#image-input', [...good, ...bad]);
  await waitGalleryCount(page, good.length + bad.length);
  let items = await galleryItems(page);
  const isBad = new Set(bad.map((f) => path.basename(f)));
  const goodScores = items.filter((i) => !isBad.has(i.name)).map((i) => i.score);
  const badScores = items.filter((i) => isBad.has(i.name)).map((i) => i.score);
  t.log(`demo: good ${goodScores.map((s) => s.toFixed(3)).join(' ')} | defective ${badScores.map((s) => s.toFixed(3)).join(' ')}`);
  t.assert(items.every((i) => Number.isFinite(i.score)), 'every image has a finite score');
  // Defective images score higher: every defective demo image is above every
  // good one (with the default model; a user model may miss subtle ones, so
  // misses are listed before the assertion).
  const maxGood = Math.max(...goodScores);
  const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
  const below = items.filter((i) => isBad.has(i.name) && i.score <= maxGood);
  if (below.length) t.log(`defective at or below the best good score (${maxGood.toFixed(3)}): ${below.map((i) => `${i.name} ${i.score.toFixed(3)}`).join(', ')}`);
  t.assert(below.length === 0 && median(badScores) > maxGood,
           `every defective demo image scores higher than every good one (max good ${maxGood})`);
  // Verdicts at the model's calibrated threshold: every good image is OK; the
  // defective ones are flagged (subtle defects may fall under a conservative
  // threshold: at least half must be flagged, the misses are listed).
  for (const i of items.filter((x) => !isBad.has(x.name))) {
    t.assert(i.verdict === 'ok', `${i.name}: good image flagged (score ${i.score})`);
  }
  const missed = items.filter((x) => isBad.has(x.name) && x.verdict !== 'anomaly');
  t.log(`defective flagged ${bad.length - missed.length}/${bad.length}` +
        (missed.length ? `; under the threshold: ${missed.map((x) => `${x.name} ${x.score.toFixed(3)}`).join(', ')}` : ''));
  t.assert(missed.length <= bad.length / 2, `most defective demo images get the anomaly verdict (missed ${missed.length}/${bad.length})`);
  const flaggedCount = bad.length - missed.length;
  // Sorted by score, most anomalous first.
  for (let k = 1; k < items.length; ++k) t.assert(items[k - 1].score >= items[k].score, 'gallery is sorted by score');
  await t.screenshot(page, '02-gallery', { fullPage: true });

  // 2. Detail view of the top (most anomalous) image, keyboard navigation.
  await page.click('#gallery .thumb >> nth=0');
  await page.waitForSelector('#detail[open]');
  await page.waitForTimeout(300);
  const overlayHasHeat = await page.evaluate(() => {
    const c = document.getElementById('detail-overlay');
    const o = document.getElementById('detail-original');
    const a = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const b = o.getContext('2d').getImageData(0, 0, o.width, o.height).data;
    let diff = 0;
    for (let i = 0; i < a.length; i += 4) diff += Math.abs(a[i] - b[i]);
    return { w: c.width, h: c.height, meanDiff: diff / (a.length / 4) };
  });
  t.assert(overlayHasHeat.w > 0 && overlayHasHeat.meanDiff > 1, `heatmap overlay drawn over the image (${JSON.stringify(overlayHasHeat)})`);
  await t.screenshot(page, '03-detail');
  await page.keyboard.press('ArrowRight');
  await page.waitForTimeout(200);
  const title2 = await page.textContent('#detail-title');
  t.assert(title2 === items[1].name, `ArrowRight moves to the next image (got ${title2}, expected ${items[1].name})`);
  await page.keyboard.press('Escape');
  await page.waitForSelector('#detail', { state: 'hidden' });

  // 3. Threshold slider changes verdicts live; the number box too.
  const maxScore = items[0].score;
  await page.fill('#threshold-number', String(maxScore + 1));
  await page.press('#threshold-number', 'Enter');
  await page.waitForTimeout(100);
  items = await galleryItems(page);
  t.assert(items.every((i) => i.verdict === 'ok'), 'a threshold above every score makes every verdict OK');
  await page.click('#threshold-reset');
  await page.waitForTimeout(100);
  items = await galleryItems(page);
  t.assert(items.filter((i) => i.verdict === 'anomaly').length === flaggedCount, 'reset restores the model threshold');

  // 4. CSV export matches the gallery.
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#csv-btn')]);
  const csvPath = path.join(t.artifacts, 'uploads--results.csv');
  await download.saveAs(csvPath);
  const rows = fs.readFileSync(csvPath, 'utf8').trim().split(/\r\n/);
  t.assert(rows[0].startsWith('rank,file,score'), `CSV header: ${rows[0]}`);
  t.assert(rows.length === items.length + 1, `CSV has one row per image (${rows.length - 1} vs ${items.length})`);
  const first = rows[1].split(',');
  t.assert(first[1] === items[0].name && Math.abs(Number(first[2]) - items[0].score) < 1e-3,
           `CSV first row matches the gallery: ${rows[1]}`);

  // 5. Other formats: the first good image as BMP and JPEG / WebP (re-encoded by the browser).
  const png = decodePng(fs.readFileSync(good[0]));
  const pngScore = items.find((i) => i.name === path.basename(good[0])).score;
  const bmp = writeBmp(png.rgba, png.width, png.height);
  const encoded = await page.evaluate(async ({ w, h, data }) => {
    const c = new OffscreenCanvas(w, h);
    c.getContext('2d').putImageData(new ImageData(new Uint8ClampedArray(data), w, h), 0, 0);
    const out = {};
    for (const type of ['image/jpeg', 'image/webp']) {
      const blob = await c.convertToBlob({ type, quality: 0.95 });
      out[type] = [...new Uint8Array(await blob.arrayBuffer())];
    }
    return out;
  }, { w: png.width, h: png.height, data: [...png.rgba] });
  await page.click('#clear-btn');
  await page.setInputFiles('#image-input', [
    { name: 'same.bmp', mimeType: 'image/bmp', buffer: bmp },
    { name: 'same.jpg', mimeType: 'image/jpeg', buffer: Buffer.from(encoded['image/jpeg']) },
    { name: 'same.webp', mimeType: 'image/webp', buffer: Buffer.from(encoded['image/webp']) },
  ]);
  await waitGalleryCount(page, 3);
  items = await galleryItems(page);
  t.log(`formats: png ${pngScore.toFixed(4)} ${items.map((i) => `${i.name} ${i.score.toFixed(4)}`).join(' ')}`);
  const bmpScore = items.find((i) => i.name === 'same.bmp').score;
  t.assert(Math.abs(bmpScore - pngScore) <= 1e-3 * Math.max(1, Math.abs(pngScore)),
           `BMP with the same pixels scores like the PNG (${bmpScore} vs ${pngScore})`);
  t.assert(items.every((i) => Number.isFinite(i.score)), 'JPEG and WebP are scored');

  // 6. "Try demo images" loads model/demo/* through the page.
  await page.click('#clear-btn');
  await page.click('#demo-btn');
  await waitGalleryCount(page, good.length + bad.length);
  items = await galleryItems(page);
  t.assert(items.length === good.length + bad.length, `demo button loads every demo image (${items.length})`);
  t.assert(items.filter((i) => i.verdict === 'anomaly').every((i) => isBad.has(i.name)), 'demo button: same verdicts');

  // 7. Offline once loaded: no network needed to score.
  await b.context.setOffline(true);
  await page.click('#clear-btn');
  const topBad = path.join(path.dirname(bad[0]), items.find((i) => isBad.has(i.name)).name);
  await page.setInputFiles('#image-input', [topBad]);
  await waitGalleryCount(page, 1);
  items = await galleryItems(page);
  t.assert(items.length === 1 && items[0].verdict === 'anomaly', 'scoring works offline');
  await b.context.setOffline(false);
  t.assert((await alertText(page)) === '', `no error shown: ${await alertText(page)}`);

  // 8. Real photos (the default model was not trained on them): scores are produced for all.
  const photos = realPhotos();
  if (photos.length) {
    await page.click('#clear-btn');
    await page.setInputFiles('#image-input', photos.map((p) => p.file));
    await waitGalleryCount(page, photos.length);
    items = await galleryItems(page);
    t.assert(items.length === photos.length && items.every((i) => Number.isFinite(i.score)),
             `every real photo is scored (${items.length}/${photos.length})`);
    t.assert((await alertText(page)) === '', `real photos: no error (${await alertText(page)})`);
    t.log(`real photos: ${items.map((i) => `${i.name}=${i.score.toFixed(2)}`).join(' ')}`);
    await t.screenshot(page, '04-real-photos', { fullPage: true });
  } else {
    t.log(`real photos: ${kDataRoot} absent, skipped`);
  }
  t.assert(b.consoleErrors.length === 0, `console errors: ${b.consoleErrors.join(' | ')}`);
}
