// Teaching from a bad camera: a black picture and a frozen one (the same
// frame over and over). Recording stops by itself with a message that says
// which, nothing is added, and the model in use stays.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { waitReady, alertText } from '../../tools/bench/lib/browser.mjs';
import { demoImages } from '../../tools/bench/lib/demo.mjs';
import { writeY4m } from '../../tools/bench/lib/y4m.mjs';
import { decodePng } from '../../tools/bench/lib/png.mjs';

const teachState = (page) => page.evaluate(() => window.__flawlens.teach);
const badge = (page) => page.textContent('#model-badge');

export default async function (t) {
  const { good } = demoImages(t.site);
  t.assert(good.length >= 1, 'the site needs a good demo image');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flawlens-teach-cam-'));
  try {
    const still = decodePng(fs.readFileSync(good[0]));
    const black = { width: still.width, height: still.height, rgba: new Uint8Array(still.width * still.height * 4).fill(0) };
    for (let i = 3; i < black.rgba.length; i += 4) black.rgba[i] = 255;
    for (const [what, frames, expect] of [['black', [black, black], /camera picture is blank/],
                                          ['frozen', [still, still], /does not change at all/]]) {
      const file = path.join(tmp, `${what}.y4m`);
      writeY4m(file, frames, { width: still.width, height: still.height, fps: 10 });
      const d = await t.launch({ camera: 'fake', y4m: file });
      await d.page.goto(t.server.url);
      await waitReady(d.page);
      const name = await badge(d.page);
      const card = await d.page.evaluate(() => window.__flawlens.modelInfo.card);
      t.assert(card && card.backbone && typeof card.backbone === 'object',
               'the site\'s default model has no pretrained backbone (card.backbone), so the page cannot teach');
      await d.page.click('#camera-toggle');
      await d.page.waitForFunction(() => document.getElementById('stage').dataset.state === 'on', null, { timeout: 20000 });
      await d.page.selectOption('#teach-seconds', '30');
      await d.page.click('#teach-record-btn');
      // Recording starts once the worker has begun a collection.
      await d.page.waitForFunction(() => window.__flawlens.teach.recording || !document.getElementById('alert').hidden,
                                   null, { timeout: 20000 });
      await d.page.waitForFunction(() => !window.__flawlens.teach.recording && window.__flawlens.teach.inFlight === 0,
                                   null, { timeout: 40000 });
      const msg = await alertText(d.page);
      const st = await teachState(d.page);
      t.log(`${what} camera: ${JSON.stringify(st.rejected)} rejected, ${st.images} taken; ${msg}`);
      t.assert(expect.test(msg) && /recording stopped/.test(msg), `${what} camera: clear message (${msg})`);
      t.assert(st.images <= 1 && (await badge(d.page)) === name, `${what} camera: nothing taught, the model stays`);
      await d.close();
    }

  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
