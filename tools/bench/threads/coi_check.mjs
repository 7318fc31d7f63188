// Checks web/coi-sw.js + web/js/coi.mjs in headless Chromium on a host that
// sends no isolation headers (python3 -m http.server): the first load
// registers the worker and reloads once, the second is crossOriginIsolated
// (SharedArrayBuffer available), and nothing leaves the origin.
//
//   node tools/bench/threads/coi_check.mjs
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { foreignRequests, launch } from '../lib/browser.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../../..');

const site = fs.mkdtempSync(path.join(os.tmpdir(), 'flawlens-coi-'));
fs.mkdirSync(path.join(site, 'js'));
fs.copyFileSync(path.join(repo, 'web/coi-sw.js'), path.join(site, 'coi-sw.js'));
fs.copyFileSync(path.join(repo, 'web/js/coi.mjs'), path.join(site, 'js/coi.mjs'));
fs.writeFileSync(path.join(site, 'index.html'), `<!doctype html><meta charset="utf-8">
<script type="module">
import { ensureCrossOriginIsolation, threadsPossible } from './js/coi.mjs';
const state = await ensureCrossOriginIsolation();
window.__coi = { state, isolated: globalThis.crossOriginIsolated, sab: typeof SharedArrayBuffer, threads: threadsPossible(),
                 loads: Number(sessionStorage.getItem('loads') || 0) + 1 };
sessionStorage.setItem('loads', String(window.__coi.loads));
</script>`);

const port = 20000 + Math.floor(Math.random() * 20000);
const server = spawn('python3', ['-m', 'http.server', '--bind', '127.0.0.1', '--directory', site, String(port)],
                     { stdio: 'ignore' });
const origin = `http://127.0.0.1:${port}`;
let failed = false;
const b = await launch({});
try {
  for (let i = 0; i < 50; i++) {  // wait for the server
    try { await fetch(`${origin}/index.html`); break; } catch { await new Promise((r) => setTimeout(r, 100)); }
  }
  await b.page.goto(`${origin}/index.html`);
  await b.page.waitForFunction(() => window.__coi && window.__coi.state !== 'reloading', null, { timeout: 30000 });
  const first = await b.page.evaluate(() => window.__coi);
  console.log('after load:', JSON.stringify(first));
  if (first.state !== 'isolated' || !first.isolated || first.sab !== 'function' || first.loads !== 2) failed = true;
  // A later visit in the same session is isolated at once (no reload).
  await b.page.goto(`${origin}/index.html`);
  await b.page.waitForFunction(() => window.__coi, null, { timeout: 30000 });
  const again = await b.page.evaluate(() => window.__coi);
  console.log('next visit:', JSON.stringify(again));
  if (again.state !== 'isolated' || again.loads !== 3) failed = true;
  const foreign = foreignRequests(b.requests, origin);
  console.log('foreign requests:', JSON.stringify(foreign));
  if (foreign.length) failed = true;
} finally {
  await b.close();
  server.kill();
  fs.rmSync(site, { recursive: true, force: true });
}
console.log(failed ? 'FAIL' : 'PASS');
process.exit(failed ? 1 : 0);
