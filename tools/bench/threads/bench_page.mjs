// One engine, one thread count, one net per page load (threads_bench.mjs
// drives it): ?engine=flawlens|flawlens-st|flawlens-paired|tfjs|ort&threads=N&net=NAME&runs=N
// [&where=worker|page: where tfjs / ort run (default worker)]
// [&tfjsDefaultThreads=1: leave tfjs's own thread policy alone]
// [&tfjsGraph=0: tfjs runs a net that has an original graph model op by op from our file].
// Times JS Float32Array in -> JS Float32Array out, as the anchor benchmark
// does, after a warm-up of >= `warm` calls and >= 1 s; leaves the result in
// window.__result.
const q = new URLSearchParams(location.search);
const engine = q.get('engine');
const threads = Number(q.get('threads') || 1);
const net = q.get('net');
const warm = Number(q.get('warm') || 5);
const runs = Number(q.get('runs') || 40);
const minWarmMs = Number(q.get('warmMs') || 1000);
const where = q.get('where') || 'worker';

const log = (s) => { document.getElementById('log').textContent += `${s}\n`; };

async function bytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}
async function floats(url) {
  const b = await bytes(url);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

// Float32Array -> base64 of its bytes (outputs of up to a few MB go back to
// node far faster this way than as a JSON array of numbers).
function toBase64(f32) {
  const b = new Uint8Array(f32.buffer, f32.byteOffset, f32.byteLength);
  let s = '';
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode.apply(null, b.subarray(i, i + 0x8000));
  return btoa(s);
}

// ---- engines ------------------------------------------------------------------
// Ours runs in a Web Worker (bench_worker.mjs), as on the product page, and
// times itself there. tfjs and onnxruntime-web run in a worker of their own
// too (anchor_worker.mjs), or with &where=page on this page, as their own
// examples do; either way each starts its own pool threads.
function inWorker(moduleFile, model, input, pairedWith, probe) {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('./bench_worker.mjs', import.meta.url), { type: 'module' });
    w.onmessage = ({ data }) => { w.terminate(); if (data.error) reject(new Error(data.error)); else resolve(data); };
    w.onerror = (e) => { w.terminate(); reject(new Error(e.message)); };
    w.postMessage({ moduleFile, model, input, threads, pairedWith, warm, runs, minWarmMs, probe });
  });
}

async function anchor(p) {
  if (where === 'page') return (await import('./anchors.mjs')).measureAnchor(p);
  if (where !== 'worker') throw new Error(`where=${where}: worker or page`);
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('./anchor_worker.mjs', import.meta.url), { type: 'module' });
    w.onmessage = ({ data }) => { w.terminate(); if (data.error) reject(new Error(data.error)); else resolve(data); };
    w.onerror = (e) => { w.terminate(); reject(new Error(e.message || 'anchor worker failed to start')); };
    w.postMessage(p);
  });
}

async function main() {
  const meta = JSON.parse(new TextDecoder().decode(await bytes(`./nets/${net}.json`)));
  const common = { net, threads, isolated: globalThis.crossOriginIsolated, cores: navigator.hardwareConcurrency };
  if (!globalThis.crossOriginIsolated && threads > 1) throw new Error('page is not cross-origin isolated: no threads');
  if (engine.startsWith('flawlens')) {
    const input = await floats(`./nets/${net}.input.bin`);
    const paired = engine === 'flawlens-paired';
    const probe = meta.probe ? { ...meta.probe, bytes: await bytes(`./nets/${meta.probe.file}`) } : null;
    const r = await inWorker(engine === 'flawlens-st' ? 'flawlens-core.mjs' : 'flawlens-core-mt.mjs',
                             await bytes(`./nets/${net}.safetensors`), input, paired, probe);
    return { engine, ...common, samples: r.samples[0], samples2: paired ? r.samples[1] : undefined, out: toBase64(r.out),
             features: r.probes ? toBase64(r.probes) : undefined, featureChannels: probe ? probe.channels : undefined,
             info: { threads: r.threads, where: 'worker' } };
  }
  const r = await anchor({ engine, net, threads, warm, runs, minWarmMs, tfjsDefaultThreads: q.get('tfjsDefaultThreads') === '1',
                           tfjsGraph: q.get('tfjsGraph') !== '0' });
  return { engine, ...common, samples: r.samples, out: toBase64(r.out), features: r.features ? toBase64(r.features) : undefined,
           info: r.info };
}

main().then((r) => { window.__result = r; log('done'); },
            (err) => { window.__result = { error: String(err && err.stack || err) }; log(String(err)); });
