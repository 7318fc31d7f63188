// The inference worker and its start-up: owns the EngineClient and the
// engine badge. Every call into the worker goes through `call`.

import { EngineClient } from '../worker-client.mjs';
import { setBadge, errText } from './dom.mjs';

// Badge text for the engine the worker started (the result of its `init`).
export function engineLabel(/* initResult */) {
  return 'Engine: WebAssembly SIMD';
}

export class EngineSession {
  constructor({ badge, messages }) {
    this.badge = badge;
    this.messages = messages;
    this.client = null;
    this.ready = false;
    this.error = null;
    this.initResult = null;
  }

  // `options` are passed to the worker's `init` along with the module URL.
  async start(options = {}) {
    const { messages } = this;
    messages.setStatus('Starting the WebAssembly engine…', { sticky: true });
    try {
      this.client = new EngineClient(new URL('../worker.mjs', import.meta.url));
      this.client.onFatal = (e) => {
        this.ready = false;
        setBadge(this.badge, 'error', 'Engine: failed');
        messages.showError(`${errText(e)} Reload the page to restart it.`);
      };
      const moduleUrl = new URL('../../flawlens-core.mjs', import.meta.url).href;
      this.initResult = await this.client.call('init', { ...options, moduleUrl });
      this.ready = true;
      setBadge(this.badge, 'ok', engineLabel(this.initResult));
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

  markUnavailable() {
    setBadge(this.badge, 'error', 'Engine: unavailable');
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
