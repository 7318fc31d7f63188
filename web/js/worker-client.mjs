// Promise wrapper around the inference worker. Besides its one answer
// ({id, ok, result|error}) a request may get any number of progress messages
// ({id, progress}) before it: they go to the call's `onProgress`.

export class WorkerError extends Error {
  constructor(message, code, name) {
    super(message);
    this.name = name && name !== 'Error' ? name : 'WorkerError';
    this.code = code;
  }
}

export class EngineClient {
  constructor(url) {
    this.worker = new Worker(url, { type: 'module', name: 'flawlens-inference' });
    this.nextId = 1;
    this.pending = new Map();
    this.onFatal = null;
    this.worker.onmessage = (e) => {
      const { id, ok, result, error, progress } = e.data || {};
      const p = this.pending.get(id);
      if (!p) return;
      if (ok === undefined && progress !== undefined) {
        // A late or throwing progress callback must not lose the answer.
        try { p.onProgress?.(progress); } catch (err) { console.warn('[flawlens] progress callback failed', err); }
        return;
      }
      this.pending.delete(id);
      if (ok) p.resolve(result);
      else p.reject(new WorkerError(error.message, error.code, error.name));
    };
    this.worker.onerror = (e) => {
      e.preventDefault?.();
      const err = new WorkerError(`The inference worker failed: ${e.message || 'script error'}`, 'worker');
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
      if (this.onFatal) this.onFatal(err);
    };
  }

  // options.onProgress(progress): the request's progress messages, if any.
  call(type, payload = {}, transfer = [], { onProgress = null } = {}) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress });
      try {
        this.worker.postMessage({ id, type, ...payload }, transfer);
      } catch (e) {
        this.pending.delete(id);
        reject(new WorkerError(`Could not send to the worker: ${e.message}`, 'post'));
      }
    });
  }

  get busy() { return this.pending.size > 0; }
}
