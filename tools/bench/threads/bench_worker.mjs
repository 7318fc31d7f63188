// Our engine inside a Web Worker, as the page runs it (web/js/worker.mjs):
// there a waiting thread sleeps (Atomics.wait); on a page's main thread
// Emscripten has to busy-wait instead. Times runs here, in the worker.
self.onmessage = async ({ data }) => {
  try {
    const { moduleFile, model, input, threads, pairedWith, warm, runs, minWarmMs, probe } = data;
    const { default: create } = await import(`./ours/${moduleFile}`);
    const m = await create();
    const make = (t, bytes = model) => {
      if (t !== 1 && !(m.threadsAvailable && m.threadsAvailable())) throw new Error('single-thread module');
      const d = new m.Detector();
      d.buffer(bytes.length).set(bytes);
      const err = d.load('auto', t);
      if (err) throw new Error(err);
      const run = () => {
        d.floats(input.length).set(input);
        const e = d.runNetwork();
        if (e) throw new Error(e);
        return d.output().slice();
      };
      run.dispose = () => d.delete();
      return run;
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
    const used = m.threadsAvailable && m.threadsAvailable() ? threads : 1;
    // probe (net backbone, after the timed runs): the backbone with a one-hot
    // 1x1 conv as output picks one feature channel per load; that is how a
    // multi-channel output leaves an engine whose API returns 1-channel maps.
    let probes = null;
    if (probe) {
      const hw = out.length;
      probes = new Float32Array(probe.channels.length * hw);
      const bytes = new Uint8Array(probe.bytes);
      const dv = new DataView(bytes.buffer);
      probe.channels.forEach((k, i) => {
        for (let c = 0; c < probe.c; c++) dv.setFloat32(probe.offset + 4 * c, c === k ? 1 : 0, true);
        const f = make(threads, bytes);
        const y = f();
        f.dispose();
        if (y.length !== hw) throw new Error(`probe output has ${y.length} values, expected ${hw}`);
        probes.set(y, i * hw);
      });
    }
    self.postMessage({ samples, out, probes, threads: used }, [out.buffer]);
  } catch (e) {
    self.postMessage({ error: String(e && e.stack || e) });
  }
};
