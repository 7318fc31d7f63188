// Look and accessibility: dark colour scheme, tablet size (portrait and
// landscape), keyboard-only use, names for every control.
import path from 'node:path';
import { waitReady, galleryItems, waitGalleryCount } from '../../tools/bench/lib/browser.mjs';
import { demoImages } from '../../tools/bench/lib/demo.mjs';

async function unlabelled(page) {
  return page.evaluate(() => {
    const bad = [];
    for (const n of document.querySelectorAll('button, input, select, [role="button"], canvas[role="img"]')) {
      const name = n.getAttribute('aria-label') || (n.labels && n.labels.length && n.labels[0].textContent.trim()) ||
        (n.getAttribute('aria-labelledby') && document.getElementById(n.getAttribute('aria-labelledby'))?.textContent.trim()) ||
        n.textContent.trim();
      if (!name) bad.push(n.id || n.outerHTML.slice(0, 60));
    }
    return bad;
  });
}

export default async function (t) {
  const { good, bad } = demoImages(t.site);

  // Dark scheme, tablet portrait (iPad Air 820x1180).
  const d = await t.launch({ colorScheme: 'dark', viewport: { width: 820, height: 1180 } });
  const page = d.page;
  await page.goto(t.server.url);
  await waitReady(page);
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  t.assert(/rgb\((\d+), (\d+), (\d+)\)/.test(bg) && Number(bg.match(/\d+/)[0]) < 60, `dark background in dark mode (${bg})`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  t.assert(overflow <= 0, `no horizontal scrolling at tablet width (${overflow}px)`);
  t.assert((await unlabelled(page)).length === 0, `every control has an accessible name: ${await unlabelled(page)}`);
  await page.setInputFiles('#image-input', [...good, ...bad]);
  await waitGalleryCount(page, good.length + bad.length);
  await page.evaluate(() => window.scrollTo(0, 0));
  await t.screenshot(page, '01-dark-tablet-portrait', { fullPage: true });
  await page.click('#gallery .thumb >> nth=0');
  await page.waitForSelector('#detail[open]');
  await page.waitForTimeout(300);
  await t.screenshot(page, '02-dark-tablet-detail');
  await page.keyboard.press('Escape');

  // Tablet landscape, light.
  const l = await t.launch({ viewport: { width: 1180, height: 820 } });
  await l.page.goto(t.server.url);
  await waitReady(l.page);
  await t.screenshot(l.page, '03-light-tablet-landscape');

  // Keyboard only: Tab to "Add images…"-equivalent controls, open a detail with Enter, close with Escape.
  const k = await t.launch({});
  const p = k.page;
  await p.goto(t.server.url);
  await waitReady(p);
  await p.setInputFiles('#image-input', [good[0], bad[0]]);
  await waitGalleryCount(p, 2);
  // Tab through the whole page: every main control and the gallery items are reachable.
  let reached = false;
  const visited = [];
  for (let i = 0; i < 80; ++i) {
    await p.keyboard.press('Tab');
    const f = await p.evaluate(() => {
      const a = document.activeElement;
      const style = getComputedStyle(a);
      return { id: a.id, cls: a.className, outline: style.outlineStyle !== 'none' && style.outlineWidth !== '0px' };
    });
    visited.push(f.id || f.cls);
    if (f.cls === 'thumb' && !reached) {
      reached = true;
      t.assert(f.outline, 'focused gallery item has a visible focus outline');
      await t.screenshot(p, '04-keyboard-focus');
    }
    if (reached && visited.includes('threshold-range') && visited.includes('calib-seconds')) break;
  }
  t.assert(reached, `gallery reachable with Tab (visited ${visited.join(' ')})`);
  for (const id of ['model-input', 'camera-toggle', 'threshold-range', 'image-input', 'demo-btn', 'calib-seconds']) {
    t.assert(visited.includes(id), `${id} is reachable with Tab (visited ${visited.join(' ')})`);
  }
  await p.focus('#gallery .thumb >> nth=0');
  await p.keyboard.press('Enter');
  await p.waitForSelector('#detail[open]');
  const title = await p.textContent('#detail-title');
  t.assert(title === path.basename(bad[0]), `Enter opens the focused (top) item: ${title}`);
  await p.keyboard.press('Escape');
  await p.waitForSelector('#detail', { state: 'hidden' });
  const back = await p.evaluate(() => document.activeElement.className);
  t.assert(back === 'thumb', 'focus returns to the gallery item after closing');
  // Threshold slider by keyboard.
  await p.focus('#threshold-range');
  const v0 = Number(await p.inputValue('#threshold-range'));
  for (let i = 0; i < 20; ++i) await p.keyboard.press('ArrowRight');
  const v1 = Number(await p.inputValue('#threshold-range'));
  t.assert(v1 > v0, `arrow keys move the threshold (${v0} -> ${v1})`);
  t.assert(/Set by hand/.test(await p.textContent('#threshold-source')), 'source says set by hand');
  const items = await galleryItems(p);
  t.assert(items.length === 2, 'gallery intact');

  // The Content-Security-Policy really blocks other origins (script, fetch, image).
  const blocked = await p.evaluate(async () => {
    const out = {};
    try { await fetch('https://cdn.example.com/x.js'); out.fetch = 'allowed'; } catch { out.fetch = 'blocked'; }
    await new Promise((resolve) => {
      const img = new Image();
      img.onload = () => { out.img = 'allowed'; resolve(); };
      img.onerror = () => { out.img = 'blocked'; resolve(); };
      img.src = 'https://fonts.example.com/a.png';
    });
    await new Promise((r) => setTimeout(r, 100));
    out.violations = window.__cspViolations.length;
    window.__cspViolations.length = 0;  // expected ones; the runner checks for unexpected ones
    return out;
  });
  t.assert(blocked.fetch === 'blocked' && blocked.img === 'blocked' && blocked.violations >= 2,
           `CSP blocks other origins (${JSON.stringify(blocked)})`);
  // Those two blocked attempts are not requests that left the page.
  k.requests.splice(0, k.requests.length, ...k.requests.filter((u) => !u.includes('example.com')));
}
