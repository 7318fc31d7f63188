// Cross-origin isolation for the threaded engine: on hosts that send
// COOP/COEP (tools/serve.py) the page is isolated already; elsewhere this
// registers ../coi-sw.js, which adds the headers, and reloads once so the
// worker controls the page. Never loops: one reload per tab session.
//
//   import { ensureCrossOriginIsolation } from './js/coi.mjs';
//   const state = await ensureCrossOriginIsolation();
//   // 'isolated' -> threads; 'reloading' -> stop, the page reloads;
//   // 'unavailable' -> single-thread module
const RELOAD_KEY = 'flawlens.coi-reloaded';

function withTimeout(promise, ms) {
  let timer = null;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('timed out')), ms); }),
  ]).finally(() => clearTimeout(timer));
}

export async function ensureCrossOriginIsolation({
  swUrl = new URL('../coi-sw.js', import.meta.url),
  win = globalThis.window,
  timeoutMs = 3000,
} = {}) {
  if (globalThis.crossOriginIsolated) {
    try { win?.sessionStorage?.removeItem(RELOAD_KEY); } catch { /* storage may be disabled */ }
    return 'isolated';
  }
  const sw = win?.navigator?.serviceWorker;
  if (!win || !win.isSecureContext || !sw) return 'unavailable';
  let reloaded = false;
  try { reloaded = win.sessionStorage.getItem(RELOAD_KEY) === '1'; } catch { reloaded = true; }
  try {
    const scope = new URL('./', swUrl).href;
    // A browser may accept the registration and never activate it (service
    // workers disabled by policy): the page does not wait for it forever.
    await withTimeout((async () => {
      const registration = await sw.register(swUrl, { scope });
      // (Automation that blocks service workers answers with no registration.)
      if (!registration) throw new Error('service worker not registered');
      await sw.ready;
    })(), timeoutMs);
  } catch {
    return 'unavailable';
  }
  // Controlled but still not isolated: the browser does not honour the
  // headers (or a reload already happened): run single-threaded.
  if (reloaded) return 'unavailable';
  try { win.sessionStorage.setItem(RELOAD_KEY, '1'); } catch { return 'unavailable'; }
  win.location.reload();
  return 'reloading';
}

// True when ensureCrossOriginIsolation() may still reload this page (not
// isolated, a service worker possible, no reload in this tab yet): work
// started before it answers could be thrown away.
export function isolationMayReload(win = globalThis.window) {
  if (globalThis.crossOriginIsolated) return false;
  if (!win || !win.isSecureContext || !win.navigator?.serviceWorker) return false;
  try {
    return win.sessionStorage.getItem(RELOAD_KEY) !== '1';
  } catch {
    return false;
  }
}

// true when the threaded module can run here (SharedArrayBuffer + isolation).
export function threadsPossible() {
  return Boolean(globalThis.crossOriginIsolated) && typeof SharedArrayBuffer === 'function';
}
