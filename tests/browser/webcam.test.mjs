// Fake webcam playing demo images (good frames, then defective frames, in a
// loop): the live score rises on the defective frames and the verdict flips;
// FPS and latency are shown; ROI, freeze, snapshot. Then "Calibrate here" on a
// good-only clip, stored per model, survives a reload, and resets.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { waitReady, alertText } from '../../tools/bench/lib/browser.mjs';
import { demoImages } from '../../tools/bench/lib/demo.mjs';
import { clipFromImages, nearest } from '../../tools/bench/lib/clip.mjs';

async function sample(page, ms, every = 100) {
  const out = [];
  const end = Date.now() + ms;
  while (Date.now() < end) {
    out.push(await page.evaluate(() => {
      // Which picture is on the video now: 4x4 mean-luma signature of the frame.
      const v = document.getElementById('video');
      let sig = null;
      if (v.videoWidth) {
        const c = document.createElement('canvas');
        c.width = v.videoWidth; c.height = v.videoHeight;
        const ctx = c.getContext('2d');
        ctx.drawImage(v, 0, 0);
        const d = ctx.getImageData(0, 0, c.width, c.height).data;
        sig = new Array(16).fill(0);
        const n = new Array(16).fill(0);
        for (let y = 0; y < c.height; y += 2) {
          for (let x = 0; x < c.width; x += 2) {
            const i = (y * c.width + x) * 4;
            const k = Math.min(3, Math.floor((y * 4) / c.height)) * 4 + Math.min(3, Math.floor((x * 4) / c.width));
            sig[k] += 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
            n[k] += 1;
          }
        }
        sig = sig.map((s, k) => s / n[k]);
      }
      return {
        score: Number(document.getElementById('live-score').textContent),
        verdict: document.getElementById('live-verdict').dataset.verdict,
        fps: document.getElementById('live-fps').textContent,
        latency: document.getElementById('live-latency').textContent,
        sig,
      };
    }));
    await page.waitForTimeout(every);
  }
  return out.filter((s) => Number.isFinite(s.score));
}

export default async function (t) {
  const { good, bad } = demoImages(t.site);
  t.assert(good.length >= 1 && bad.length >= 1, 'the site needs good and defective demo images');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flawlens-y4m-'));
  try {
    const clipFile = path.join(tmp, 'good-then-bad.y4m');
    const clip = clipFromImages(clipFile, [...good, ...bad], { hold: 10, fps: 10 });
    t.log(`clip ${clip.width}x${clip.height}, ${clip.frames} frames, ${clip.seconds} s loop (${good.length} good then ${bad.length} defective images)`);

    const b = await t.launch({ camera: 'fake', y4m: clipFile });
    const page = b.page;
    await page.goto(t.server.url);
    const ready = await waitReady(page);
    t.assert(ready.model === 'ok', `model ready: ${JSON.stringify(ready)}`);
    await page.click('#camera-toggle');
    await page.waitForFunction(() => Number(document.getElementById('live-fps').textContent) > 0, null, { timeout: 20000 });
    // Camera choice lists the (fake) device once permission is granted.
    const options = await page.evaluate(() => [...document.querySelectorAll('#camera-select option')].map((o) => o.value));
    t.assert(options.some((v) => v.startsWith('device:')) && options.includes('facing:environment'),
             `camera choice offers devices and back/front (${options.join(' ')})`);
    const samples = await sample(page, clip.seconds * 1000 * 1.5 + 1000);

    t.assert(samples.length > 10, `enough live samples (${samples.length})`);
    const fps = Number(samples[samples.length - 1].fps);
    t.assert(fps > 0, `FPS is displayed (${samples[samples.length - 1].fps})`);
    t.assert(/\d+ ms/.test(samples[samples.length - 1].latency), `latency is displayed (${samples[samples.length - 1].latency})`);
    const okS = samples.filter((s) => s.verdict === 'ok').map((s) => s.score);
    const badS = samples.filter((s) => s.verdict === 'anomaly').map((s) => s.score);
    let flipsUp = 0;
    for (let i = 1; i < samples.length; ++i) if (samples[i - 1].verdict === 'ok' && samples[i].verdict === 'anomaly') ++flipsUp;
    const frac = badS.length / samples.length;
    const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
    t.log(`live: ${samples.length} samples, fps ${fps}, ok ${okS.length} (median ${median(okS)?.toFixed(3)}), ` +
          `anomaly ${badS.length} (median ${median(badS)?.toFixed(3)}), ok->anomaly flips ${flipsUp}`);
    t.assert(okS.length > 0 && badS.length > 0, 'both verdicts are seen while the clip loops');
    t.assert(flipsUp >= 1, 'the verdict flips from OK to anomaly when the defective frames come');
    // About bad/(good+bad) of the loop is defective: the live verdict follows the frames.
    const expect = bad.length / (good.length + bad.length);
    t.assert(Math.abs(frac - expect) < 0.3, `anomaly fraction ${frac.toFixed(2)} vs defective share of the clip ${expect.toFixed(2)}`);
    // Tie each sample to the picture on the video (nearest signature): the
    // live score is higher on the defective pictures and the verdict follows.
    const nGood = good.length;
    const onGood = [], onBad = [];
    for (const s of samples) {
      if (!s.sig) continue;
      (nearest(s.sig, clip.signatures) < nGood ? onGood : onBad).push(s);
    }
    const okOnGood = onGood.filter((s) => s.verdict === 'ok').length / Math.max(1, onGood.length);
    const badOnBad = onBad.filter((s) => s.verdict === 'anomaly').length / Math.max(1, onBad.length);
    t.log(`by picture: good frames ${onGood.length} (median score ${median(onGood.map((s) => s.score))?.toFixed(3)}, ` +
          `${(100 * okOnGood).toFixed(0)}% OK), defective frames ${onBad.length} (median ${median(onBad.map((s) => s.score))?.toFixed(3)}, ` +
          `${(100 * badOnBad).toFixed(0)}% anomaly)`);
    t.assert(onGood.length > 3 && onBad.length > 3, 'samples on both kinds of picture');
    t.assert(median(onBad.map((s) => s.score)) > median(onGood.map((s) => s.score)), 'live score rises on the defective pictures');
    // Allow the one-frame lag at picture changes.
    t.assert(okOnGood >= 0.75, `good pictures are mostly OK (${okOnGood.toFixed(2)})`);
    t.assert(badOnBad >= 0.6, `defective pictures are mostly flagged (${badOnBad.toFixed(2)})`);
    // Sparkline and overlay have been drawn. The colour map is transparent at
    // low values, so a good frame's heatmap may leave the overlay clear: poll
    // the painted overlay over a whole loop of the clip (every frame, good or
    // defective, is repainted) until a frame with visible heat is on it.
    // `want`: null until both are drawn (for polling); else the counts as they are.
    const countDrawn = (want) => {
      const count = (c) => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) ++n;
        return n;
      };
      const r = { spark: count(document.getElementById('sparkline')), overlay: count(document.getElementById('overlay')) };
      return !want || (r.spark > 0 && r.overlay > 0) ? r : null;
    };
    const drawnHandle = await page.waitForFunction(countDrawn, true, { timeout: clip.seconds * 1000 * 2 + 5000, polling: 50 })
      .catch(() => null);
    const drawn = drawnHandle ? await drawnHandle.jsonValue() : await page.evaluate(countDrawn, false);
    t.assert(drawn.spark > 0 && drawn.overlay > 0, `sparkline and heatmap overlay drawn (${JSON.stringify(drawn)})`);
    // Wait for an anomalous frame for the screenshot.
    await page.waitForFunction(() => document.getElementById('live-verdict').dataset.verdict === 'anomaly', null, { timeout: 20000 });
    await t.screenshot(page, '01-live-anomaly');

    // Region of interest by dragging on the picture.
    const box = await page.locator('#overlay').boundingBox();
    await page.mouse.move(box.x + box.width * 0.2, box.y + box.height * 0.2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.6, box.y + box.height * 0.5, { steps: 5 });
    await page.mouse.move(box.x + box.width * 0.8, box.y + box.height * 0.8, { steps: 5 });
    await page.mouse.up();
    const status = await page.textContent('#status');
    t.assert(/Region of interest/.test(status), `ROI set by dragging (status: ${status})`);
    t.assert(!(await page.isDisabled('#roi-clear-btn')), 'Clear region is enabled');
    await page.waitForFunction(() => Number(document.getElementById('live-fps').textContent) > 0, null, { timeout: 10000 });
    await page.waitForTimeout(1500);
    await t.screenshot(page, '02-live-roi');
    await page.click('#roi-clear-btn');

    // Freeze right after the region changed (no result on screen yet): the
    // frozen picture gets one score, which then stays (late results of
    // frames before the freeze are dropped); snapshot adds to the gallery.
    await page.click('#freeze-btn');
    await page.waitForFunction(() => document.getElementById('live-score').textContent !== '—', null, { timeout: 10000 });
    const frozen1 = await page.textContent('#live-score');
    await page.waitForTimeout(1200);
    const frozen2 = await page.textContent('#live-score');
    t.assert(frozen1 === frozen2, `frozen score stays (${frozen1} vs ${frozen2})`);
    await page.click('#snapshot-btn');
    await page.waitForFunction(() => document.querySelectorAll('#gallery .thumb').length === 1, null, { timeout: 15000 });
    await t.screenshot(page, '03-frozen-snapshot', { fullPage: true });
    await page.click('#freeze-btn');
    await page.click('#camera-toggle');
    t.assert((await page.getAttribute('#stage', 'data-state')) === 'off', 'camera stops');
    t.assert((await alertText(page)) === '', `no error shown: ${await alertText(page)}`);
    t.assert(b.consoleErrors.length === 0, `console errors: ${b.consoleErrors.join(' | ')}`);
    await b.close();

    // ---- Calibrate here, on a good-only clip.
    const goodClip = path.join(tmp, 'good.y4m');
    clipFromImages(goodClip, good, { hold: 5, fps: 10 });
    const c = await t.launch({ camera: 'fake', y4m: goodClip });
    const p2 = c.page;
    await p2.goto(t.server.url);
    await waitReady(p2);
    const modelThr = Number(await p2.inputValue('#threshold-number'));
    // A threshold far too low: every good frame is flagged.
    await p2.fill('#threshold-number', String(-1000));
    await p2.press('#threshold-number', 'Enter');
    await p2.click('#camera-toggle');
    await p2.waitForFunction(() => document.getElementById('live-verdict').dataset.verdict === 'anomaly', null, { timeout: 20000 });
    await p2.selectOption('#calib-seconds', '3');
    await p2.click('#calib-btn');
    await p2.waitForFunction(() => /Calibrated here/.test(document.getElementById('threshold-source').textContent), null, { timeout: 20000 });
    const calibrated = Number(await p2.inputValue('#threshold-number'));
    t.log(`calibration: model threshold ${modelThr}, calibrated ${calibrated}; ${await p2.textContent('#status')}`);
    const after = await sample(p2, 2500);
    t.assert(after.length > 3 && after.every((s) => s.verdict === 'ok'),
             `after calibrating on good frames, good frames are OK (${after.map((s) => s.score).join(' ')} vs ${calibrated})`);
    t.assert(after.every((s) => s.score < calibrated), 'calibrated threshold is above the good frames\' scores');
    await t.screenshot(p2, '04-calibrated');
    // Stored per model: survives a reload.
    await p2.reload();
    await waitReady(p2);
    const reloaded = Number(await p2.inputValue('#threshold-number'));
    t.assert(Math.abs(reloaded - calibrated) < 1e-3 * Math.max(1, Math.abs(calibrated)), `stored threshold after reload (${reloaded} vs ${calibrated})`);
    t.assert(/Calibrated here/.test(await p2.textContent('#threshold-source')), 'source says calibrated after reload');
    await p2.click('#threshold-reset');
    const reset = Number(await p2.inputValue('#threshold-number'));
    t.assert(Math.abs(reset - modelThr) < 1e-3 * Math.max(1, Math.abs(modelThr)), `reset to the model value (${reset} vs ${modelThr})`);
    await p2.reload();
    await waitReady(p2);
    t.assert(/model's calibrated threshold/.test(await p2.textContent('#threshold-source')), 'reset is stored too');
    t.assert(c.consoleErrors.length === 0, `console errors: ${c.consoleErrors.join(' | ')}`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
