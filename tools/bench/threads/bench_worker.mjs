// Our engine inside a Web Worker, as the page runs it (web/js/worker.mjs):
// there a waiting thread sleeps (Atomics.wait); on a page's main thread
// Emscripten has to busy-wait instead. Times runs here, in the worker.
self.onmessage = async ({ data }) => {
  try {
    const { moduleFile, model, input, threads, pairedWith, warm, runs, minWarmMs } = data;
    const { default: create } = await import(`./ours/${moduleFile}`);
    const m = await create();
    const make = (t) => {
      if (m.setThreads) m.setThreads(t);
      else if (t !== 1) throw new Error('single-thread module');
      const d = new m.Detector();
      d.buffer(model.length).set(model);
      const err = d.load('auto');
      if (err) throw new Error(err);
      return () => {
        d.floats(input.length).set(input);
        const e = d.runNetwork();
        if (e) throw new Error(e);
        return d.output().slice();
      };
    };
    // pairedWith: also a 1-thread detector, runs alternating with the other.
    const fns = pairedWith ? [make(1), make(threads)] : [make(threads)];
    const out = fns[fns.length - 1]();
    const w0 = performance.now();
    for (let i = 0; i < warm || performance.now() - w0 < minWarmMs; i++) for (const f of fns) f();
    const samples = fns.map(() => []);
    for (let i = 0; i < runs; i++) {
      const order = i % 2 === 0 ? fns.map((_, k) => k) : fns.map((_, k) => fns.length - 1 - k);
      for (const k of order) {
        const t0 = performance.now();
        fns[k]();
        samples[k].push(performance.now() - t0);
      }
    }
    self.postMessage({ samples, out, threads: m.threads ? m.threads() : 1 }, [out.buffer]);
  } catch (e) {
    self.postMessage({ error: String(e && e.stack || e) });
  }
};
