#!/usr/bin/env node
// The page benchmark (not a test): the product page in headless Chromium.
//
//   node tools/bench/page_bench.mjs load    [...]  page load -> first score (first visit, browser
//                                                  running, repeat visit), live FPS, latency, memory
//   node tools/bench/page_bench.mjs teach   [...]  teaching in the page: record + fit from a fake webcam
//   node tools/bench/page_bench.mjs threads [...]  our engine with 1 and 2 threads against
//                                                  tfjs-backend-wasm and onnxruntime-web
//
// Each case's options are at the top of tools/bench/page/<case>.mjs and in
// tools/bench/README.md. Needs playwright-core (cd tests && npm ci) and a
// built site (tools/build_site.sh) or, for threads, a wasm build folder.
const cases = {
  load: './page/load.mjs',
  teach: './page/teach.mjs',
  threads: './page/threads.mjs',
};
const [name, ...argv] = process.argv.slice(2);
if (!(name in cases)) {
  console.error(`usage: page_bench.mjs ${Object.keys(cases).join('|')} [options]  (tools/bench/README.md)`);
  process.exit(2);
}
const { run } = await import(cases[name]);
await run(argv);
