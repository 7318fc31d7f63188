// What the page needs first, started as early as it can be: the inference
// worker (the wasm engine starts in it) and the default model's download.
// index.html loads this as an async module script ahead of app.mjs, so both
// run while the rest of the page's modules are still loading; app.mjs takes
// them over (ui/session.mjs, ui/model.mjs). Nothing is started when the page
// may still reload itself for cross-origin isolation (js/coi.mjs).
import { isolationMayReload } from './coi.mjs';
import { startEngineWorker } from './ui/session.mjs';
import { fetchDefaultModel } from './ui/model.mjs';
import { loadStartModel } from './storage.mjs';

function boot() {
  if (isolationMayReload() || !globalThis.Worker || !globalThis.WebAssembly) return { engine: null, model: null };
  performance.mark('flawlens:boot');
  return {
    engine: startEngineWorker(),
    // A taught start model (kept in this browser) replaces the default one.
    model: loadStartModel() ? null : fetchDefaultModel(),
  };
}

export const early = boot();
