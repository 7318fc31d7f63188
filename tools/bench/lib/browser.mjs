// Launch Debian's Chromium through playwright-core (recipe: shared BROWSER.md).
import fs from 'node:fs';
import os from 'node:os';
import { createRequire } from 'node:module';
import path from 'node:path';

// playwright-core is installed in tests/ (cd tests && npm ci), not beside this file.
const { chromium } = createRequire(new URL('../../../tests/package.json', import.meta.url))('playwright-core');

export const kChromium = process.env.CHROMIUM || '/usr/bin/chromium';

// camera: 'fake' (fake device, permission granted, y4m file if given),
//         'denied' (fake device present, no permission, no auto-accept),
//         'none'   (no camera flags at all).
// serviceWorkers: 'allow' or 'block' (a browser without service workers: on a
// server without isolation headers the page then stays single-threaded).
export async function launch({ camera = 'none', y4m = null, colorScheme = 'light',
                               viewport = { width: 1280, height: 900 }, extraArgs = [],
                               serviceWorkers = 'allow' } = {}) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flawlens-chromium-'));
  for (const d of ['cache', 'config']) fs.mkdirSync(path.join(tmp, d));
  const args = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                '--disable-background-networking', '--disable-component-update', '--disable-sync',
                '--enable-precise-memory-info', ...extraArgs];
  if (camera === 'fake' || camera === 'denied') args.push('--use-fake-device-for-media-stream');
  if (camera === 'fake') {
    args.push('--use-fake-ui-for-media-stream');
    if (y4m) args.push(`--use-file-for-fake-video-capture=${path.resolve(y4m)}`);
  }
  const context = await chromium.launchPersistentContext(path.join(tmp, 'profile'), {
    executablePath: kChromium, headless: true, args, viewport, colorScheme,
    acceptDownloads: true, serviceWorkers,
    permissions: camera === 'fake' ? ['camera'] : [],
    env: { ...process.env, TMPDIR: tmp, XDG_CACHE_HOME: path.join(tmp, 'cache'),
           XDG_CONFIG_HOME: path.join(tmp, 'config') },
  });
  const requests = [];
  const consoleErrors = [];
  const onPage = (page) => {
    page.on('request', (r) => requests.push(r.url()));
    page.on('worker', (w) => requests.push(`worker:${w.url()}`));
    page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  };
  context.on('page', onPage);
  context.on('request', (r) => requests.push(r.url()));
  // Count CSP violations in the page.
  await context.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  let page = context.pages()[0];
  if (page) onPage(page);
  else page = await context.newPage();  // the 'page' event attaches the listeners
  return {
    context, page, requests, consoleErrors,
    async close() {
      await context.close().catch(() => {});
      fs.rmSync(tmp, { recursive: true, force: true });
    },
  };
}

// Every URL must be on `origin` (or blob:/data:). Returns offending URLs.
export function foreignRequests(requests, origin) {
  return [...new Set(requests)].filter((u) => {
    const url = u.startsWith('worker:') ? u.slice(7) : u;
    return !(url.startsWith(origin + '/') || url.startsWith('blob:' + origin) || url.startsWith('data:'));
  });
}

// Wait until the page has its engine and model ready (or failed).
export async function waitReady(page, timeout = 30000) {
  await page.waitForFunction(() => {
    const m = document.getElementById('model-badge').dataset.state;
    const e = document.getElementById('engine-badge').dataset.state;
    return m === 'ok' || m === 'error' || e === 'error';
  }, null, { timeout });
  return page.evaluate(() => ({
    engine: document.getElementById('engine-badge').dataset.state,
    model: document.getElementById('model-badge').dataset.state,
    modelText: document.getElementById('model-badge').textContent,
    alert: document.getElementById('alert').hidden ? '' : document.getElementById('alert-text').textContent,
  }));
}

export async function alertText(page) {
  return page.evaluate(() => (document.getElementById('alert').hidden ? '' : document.getElementById('alert-text').textContent));
}

export async function galleryItems(page) {
  return page.evaluate(() => [...document.querySelectorAll('#gallery .thumb')].map((b) => ({
    name: b.querySelector('.name').textContent,
    score: Number(b.querySelector('.score').textContent),
    verdict: b.querySelector('.verdict').dataset.verdict,
  })));
}

export async function waitGalleryCount(page, n, timeout = 60000) {
  await page.waitForFunction((k) => document.querySelectorAll('#gallery .thumb').length >= k &&
    document.getElementById('gallery-progress').hidden, n, { timeout });
}
