#!/usr/bin/env node
// Browser test runner: node tests/browser/run.mjs --site build/site [--only NAME]
//   [--flawlens PATH]  the native CLI for the tests that compare with it
//                      (default build/native-release/tools/flawlens)
//   [--isolation on|off]  on (default): the server sends the cross-origin
//                      isolation headers, so the page runs the threaded engine
//                      (flawlens-core-mt, 2 threads on 2 cores); off: no
//                      headers and no service workers (the page cannot isolate
//                      itself), so it runs the single-thread module.
//                      threads.test.mjs runs the other mode itself and checks
//                      that both give the same scores and maps.
// Starts its own static server on a free 127.0.0.1 port, runs every
// tests/browser/*.test.mjs (each exports `default async function (t)`),
// saves screenshots to build/test-artifacts/browser/, exits 1 on failure.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startServer } from '../../tools/bench/lib/server.mjs';
import { launch, foreignRequests, kChromium } from '../../tools/bench/lib/browser.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const argv = process.argv.slice(2);
const arg = (name, def) => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] ? argv[i + 1] : def;
};
const site = path.resolve(arg('--site', path.join(repo, 'build', 'site')));
const only = arg('--only', '');
const artifacts = path.resolve(arg('--artifacts', path.join(repo, 'build', 'test-artifacts', 'browser')));
const flawlens = path.resolve(arg('--flawlens', path.join(repo, 'build', 'native-release', 'tools', 'flawlens')));
const isolation = arg('--isolation', 'on');
if (!['on', 'off'].includes(isolation)) {
  console.error(`run.mjs: --isolation must be on or off, got '${isolation}'`);
  process.exit(2);
}
const isolated = isolation === 'on';

if (!fs.existsSync(path.join(site, 'index.html'))) {
  console.error(`run.mjs: no site at ${site} (build it: tools/build_site.sh build/wasm-release build/site)`);
  process.exit(2);
}
if (!fs.existsSync(kChromium)) {
  console.error(`run.mjs: Chromium not found at ${kChromium} (apt-get install chromium, or set CHROMIUM)`);
  process.exit(2);
}
fs.mkdirSync(artifacts, { recursive: true });

class AssertionError extends Error {}
function assert(cond, message) {
  if (!cond) throw new AssertionError(message);
}

const files = fs.readdirSync(here).filter((f) => f.endsWith('.test.mjs')).sort()
  .filter((f) => !only || f.includes(only));
const server = await startServer(site, { isolate: isolated });
console.log(`site ${site} at ${server.url} (${isolated ? 'cross-origin isolated: threaded engine' : 'not isolated: single-thread engine'})`);
let failed = 0;
const results = [];
for (const file of files) {
  const name = file.replace(/\.test\.mjs$/, '');
  const launched = [];
  const t = {
    name, site, server, artifacts, repo, assert, flawlens, isolated,
    log: (...a) => console.log(`  [${name}]`, ...a),
    // Launch a browser; its requests are checked for foreign origins at the end.
    // Without isolation headers, service workers are blocked (unless a test
    // asks for them) so that the page cannot isolate itself with coi-sw.js.
    async launch(opts = {}) {
      const b = await launch({ serviceWorkers: isolated ? 'allow' : 'block', ...opts });
      b.origin = opts.origin || server.origin;
      launched.push(b);
      return b;
    },
    async screenshot(page, shot, opts = {}) {
      const file = path.join(artifacts, `${name}--${shot}.png`);
      await page.screenshot({ path: file, fullPage: opts.fullPage ?? false, ...opts });
      return file;
    },
  };
  const start = Date.now();
  let error = null;
  try {
    const mod = await import(pathToFileURL(path.join(here, file)).href);
    await Promise.race([
      mod.default(t),
      new Promise((_, rej) => setTimeout(() => rej(new Error('test timed out after 180 s')), 180000).unref()),
    ]);
    // Every request every page made went to the page's own origin.
    for (const b of launched) {
      const foreign = foreignRequests(b.requests, b.origin);
      assert(foreign.length === 0, `requests left the origin: ${foreign.join(', ')}`);
      for (const p of b.context.pages()) {
        const csp = await p.evaluate(() => window.__cspViolations || []).catch(() => []);
        assert(csp.length === 0, `CSP violations: ${csp.join('; ')}`);
      }
    }
  } catch (e) {
    error = e;
  } finally {
    for (const b of launched) await b.close();
  }
  const secs = ((Date.now() - start) / 1000).toFixed(1);
  if (error) {
    ++failed;
    console.log(`FAIL ${name} (${secs} s): ${error.stack || error}`);
  } else {
    console.log(`ok   ${name} (${secs} s)`);
  }
  results.push({ name, ok: !error, secs });
}
await server.close();
console.log(`\n${results.length - failed}/${results.length} browser tests passed; screenshots in ${artifacts}`);
process.exit(failed ? 1 : 0);
