// The inference worker and its start-up: owns the EngineClient, the engine
// badge and the threads setting. Every call into the worker goes through
// `call`.
//
// Which module: the threaded one (flawlens-core-mt) when the page is
// cross-origin isolated (SharedArrayBuffer) and the browser reports more than
// one core, else the single-thread one; the worker falls back to the
// single-thread module if the threaded one fails to start.

import { EngineClient } from '../worker-client.mjs';
import { loadThreadsSetting, saveThreadsSetting } from '../storage.mjs';
import { setBadge, errText } from './dom.mjs';
import { kMaxThreads } from '../threads.mjs';

// Threads on 'auto': a few cores are plenty for one camera frame, and more
// leave nothing for the page, the camera and the rest of the machine.
export const kAutoThreads = 4;

// The plan for this page: {threaded, threads, maxThreads, auto, reason}.
// reason: why the single-thread module is used (null when threaded).
export function threadPlan({ isolated, cores, setting = 'auto' }) {
  const hc = Number.isInteger(cores) && cores > 0 ? cores : 1;
  const maxThreads = Math.min(hc, kMaxThreads);
  const auto = Math.min(hc, kAutoThreads);
  let reason = null;
  if (!isolated) reason = 'page not cross-origin isolated';
  else if (hc < 2) reason = 'one core';
  if (reason) return { threaded: false, threads: 1, maxThreads: 1, auto: 1, reason };
  const n = setting === 'auto' ? auto : Math.max(1, Math.min(Number(setting) || 1, maxThreads));
  return { threaded: true, threads: n, maxThreads, auto, reason };
}

// Badge text for the engine the worker started (the result of its `init` or
// `setThreads`) and the plan's reason for a single thread.
export function engineLabel(state, plan = null) {
  if (!state) return 'Engine: wasm SIMD';
  const n = state.threads || 1;
  const base = `Engine: wasm SIMD · ${n} thread${n === 1 ? '' : 's'}`;
  if (state.module === 'mt') return base;
  if (state.fallback && plan && plan.threaded) return `${base} (threaded module failed to load)`;
  return plan && plan.reason ? `${base} (${plan.reason})` : base;
}

export function pageIsolated() {
  return Boolean(globalThis.crossOriginIsolated) && typeof SharedArrayBuffer === 'function';
}

// The plan for this page with the stored setting.
export function pagePlan(setting = loadThreadsSetting()) {
  return threadPlan({ isolated: pageIsolated(), cores: navigator.hardwareConcurrency, setting });
}

// Creates the inference worker and sends it `init` at once: {client, init,
// plan} (init: the promise of its answer). js/boot.mjs calls this before the
// rest of the page has loaded; EngineSession.start() takes it over.
export function startEngineWorker(plan = pagePlan()) {
  const client = new EngineClient(new URL('../worker.mjs', import.meta.url));
  const moduleUrl = new URL('../../flawlens-core.mjs', import.meta.url).href;
  const mtModuleUrl = plan.threaded ? new URL('../../flawlens-core-mt.mjs', import.meta.url).href : null;
  const init = client.call('init', { moduleUrl, mtModuleUrl, threads: plan.threads });
  init.catch(() => {});  // reported by EngineSession.start()
  return { client, init, plan };
}

export class EngineSession {
  // threadsSelect: the <select> of the threads setting (optional).
  // early: what startEngineWorker() returned, if the worker was started already.
  constructor({ badge, messages, threadsSelect = null, threadsHint = null, early = null }) {
    this.early = early;
    this.badge = badge;
    this.messages = messages;
    this.threadsSelect = threadsSelect;
    this.threadsHint = threadsHint;
    this.client = null;
    this.ready = false;
    this.error = null;
    this.initResult = null;
    this.state = null;  // {module, threads, maxThreads, fallback}
    this.setting = loadThreadsSetting();
    this.plan = pagePlan(this.setting);
    if (threadsSelect) threadsSelect.addEventListener('change', () => this.chooseThreads(threadsSelect.value));
    this.renderThreads();
  }

  // Starts the worker (or takes over the one started early) and waits for its engine.
  async start() {
    const { messages } = this;
    messages.setStatus('Starting the WebAssembly engine…', { sticky: true });
    try {
      const started = this.early && this.early.plan.threaded === this.plan.threaded ? this.early : startEngineWorker(this.plan);
      this.early = null;
      this.client = started.client;
      this.client.onFatal = (e) => {
        this.ready = false;
        setBadge(this.badge, 'error', 'Engine: failed');
        messages.showError(`${errText(e)} Reload the page to restart it.`);
      };
      this.initResult = await started.init;
      this.state = { ...this.initResult };
      this.ready = true;
      this.showState();
      performance.mark('flawlens:engine-ready');
      return true;
    } catch (e) {
      this.error = e;
      this.markUnavailable();
      const msg = errText(e);
      messages.showError(`The detection engine could not start: ${msg}` + (/SIMD|WebAssembly support/.test(msg) ? ''
        : ' Reload the page; if this keeps happening, the site\'s flawlens-core.wasm is missing or damaged.'));
      messages.setStatus('');
      return false;
    }
  }

  showState() {
    const text = engineLabel(this.state, this.plan);
    setBadge(this.badge, 'ok', text);
    if (this.state && this.state.fallback && this.plan.threaded) this.badge.title = `${text}: ${this.state.fallback}`;
    this.renderThreads();
  }

  // The threads <select>: Auto and 1..max where the threaded module runs;
  // disabled (with the reason) where it does not.
  renderThreads() {
    const sel = this.threadsSelect;
    if (!sel) return;
    const threaded = this.plan.threaded && (!this.state || this.state.module === 'mt');
    const max = threaded ? Math.min(this.plan.maxThreads, this.state?.maxThreads ?? this.plan.maxThreads) : 1;
    const opts = [['auto', `Auto (${threaded ? Math.min(this.plan.auto, max) : 1})`]];
    for (let n = 1; n <= max; ++n) opts.push([String(n), String(n)]);
    sel.replaceChildren(...opts.map(([value, text]) => {
      const o = document.createElement('option');
      o.value = value;
      o.textContent = text;
      return o;
    }));
    const want = String(this.setting);
    sel.value = opts.some(([v]) => v === want) ? want : (threaded ? String(max) : 'auto');
    sel.disabled = !threaded || !this.ready;
    if (this.threadsHint) {
      let hint = '';
      if (!threaded) {
        hint = this.state && this.state.fallback && this.plan.threaded
          ? 'One thread: the threaded engine could not start here.'
          : this.plan.reason === 'one core'
            ? 'One thread: the browser reports one core.'
            : 'One thread: more need a cross-origin isolated page (see the site’s README).';
      }
      this.threadsHint.textContent = hint;
      this.threadsHint.hidden = !hint;
    }
  }

  // The setting changed: stored, and applied to the running engine (the
  // worker reloads the model from its bytes; the gallery and everything
  // else on the page stay).
  async chooseThreads(value) {
    this.setting = value === 'auto' ? 'auto' : Number(value);
    saveThreadsSetting(this.setting);
    this.plan = pagePlan(this.setting);
    if (!this.ready || !this.state || this.state.module !== 'mt') {
      this.renderThreads();
      return;
    }
    const sel = this.threadsSelect;
    if (sel) sel.disabled = true;
    try {
      const r = await this.client.call('setThreads', { threads: this.plan.threads });
      this.state = { ...this.state, threads: r.threads };
      this.messages.setStatus(`The engine runs ${r.threads} thread${r.threads === 1 ? '' : 's'}.`);
    } catch (e) {
      this.messages.showError(`Could not change the number of threads: ${errText(e)}`);
    } finally {
      this.showState();
    }
  }

  markUnavailable() {
    setBadge(this.badge, 'error', 'Engine: unavailable');
    this.renderThreads();
  }

  // Shows why the engine cannot be used yet; true when it can.
  requireReady() {
    if (this.ready) return true;
    this.messages.showError(this.error ? `The engine is not available: ${errText(this.error)}`
                                       : 'The engine is still starting; try again in a moment.');
    return false;
  }

  call(type, payload, transfer) {
    return this.client.call(type, payload, transfer);
  }

  stats() {
    return this.client ? this.client.call('stats') : Promise.resolve(null);
  }
}
