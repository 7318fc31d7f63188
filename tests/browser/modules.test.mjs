// The page's pure modules under node (no browser): CSV
// quoting, colour LUT indexing, model fingerprint, the engine's thread plan
// and badge text.
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export default async function (t) {
  const web = (f) => pathToFileURL(path.join(t.repo, 'web', 'js', f)).href;
  const { toCsv } = await import(web('csv.mjs'));
  const { lutIndex, kLut } = await import(web('colormap.mjs'));
  const { hashBytes, hashBytesAsync, modelKey } = await import(web('storage.mjs'));
  const { threadPlan, engineLabel } = await import(web('ui/session.mjs'));

  // Which engine module and how many threads.
  const iso = (cores, setting = 'auto') => threadPlan({ isolated: true, cores, setting });
  t.assert(iso(2).threaded && iso(2).threads === 2 && iso(2).maxThreads === 2, 'isolated, 2 cores: threaded, Auto = 2');
  t.assert(iso(16).threads === 4 && iso(16).maxThreads === 8, 'Auto is at most 4 threads; the choice at most 8 (the pool)');
  t.assert(iso(16, 6).threads === 6 && iso(4, 9).threads === 4 && iso(4, 1).threads === 1, 'a chosen count, clamped to the cores');
  const one = iso(1);
  t.assert(!one.threaded && one.threads === 1 && one.reason === 'one core', 'one core: single thread, says why');
  const plain = threadPlan({ isolated: false, cores: 8, setting: 4 });
  t.assert(!plain.threaded && plain.threads === 1 && plain.reason === 'page not cross-origin isolated', 'not isolated: single thread');
  t.assert(threadPlan({ isolated: true, cores: undefined }).threads === 1, 'no hardwareConcurrency: one core assumed');
  t.assert(engineLabel({ module: 'mt', threads: 2 }, iso(2)) === 'Engine: wasm SIMD · 2 threads', 'badge: threaded');
  t.assert(engineLabel({ module: 'mt', threads: 1 }, iso(2, 1)) === 'Engine: wasm SIMD · 1 thread', 'badge: threaded, 1 chosen');
  t.assert(engineLabel({ module: 'st', threads: 1 }, plain) === 'Engine: wasm SIMD · 1 thread (page not cross-origin isolated)',
           'badge: not isolated');
  t.assert(engineLabel({ module: 'st', threads: 1, fallback: 'x' }, iso(2)) ===
           'Engine: wasm SIMD · 1 thread (threaded module failed to load)', 'badge: fallback');

  const csv = toCsv(['a', 'b'], [['=cmd()', 'x,"y"'], [-1.5, 'ok'], [NaN, null]]);
  t.assert(csv === 'a,b\r\n\'=cmd(),"x,""y"""\r\n-1.5,ok\r\n,\r\n', `CSV quoting: ${JSON.stringify(csv)}`);

  t.assert(lutIndex(0, 0, 1) === 0 && lutIndex(1, 0, 1) === 255 && lutIndex(0.5, 0, 1) === 128, 'LUT index');
  t.assert(lutIndex(NaN, 0, 1) === 0 && lutIndex(-5, 0, 1) === 0 && lutIndex(9, 0, 1) === 255, 'LUT clamps');
  t.assert(lutIndex(3, 2, 2) === 255 && lutIndex(1, 2, 2) === 0, 'empty display range does not divide by zero');
  t.assert(kLut.length === 1024 && kLut[3] === 0 && kLut[1023] === 204, 'LUT: clear at low, mostly opaque at high (the part stays visible)');

  const h1 = hashBytes(new Uint8Array([1, 2, 3])), h2 = hashBytes(new Uint8Array([1, 2, 4]));
  t.assert(/^[0-9a-f]{16}$/.test(h1) && h1 !== h2 && h1 === hashBytes(new Uint8Array([1, 2, 3])), 'fingerprint');
  t.assert(modelKey('a b', h1) !== modelKey('a b', h2) && modelKey('a/b', h1).includes('a%2Fb'), 'storage key');
  // The sliced hash is the same hash, whatever the slice size.
  const big = new Uint8Array(300007).map((_, i) => (i * 2654435761) >>> 13);
  const whole = hashBytes(big);
  for (const chunk of [1, 4093, 65536, 1 << 20]) {
    if (chunk === 1) {
      const small = big.subarray(0, 999);
      t.assert((await hashBytesAsync(small, 1)) === hashBytes(small), 'sliced hash, 1-byte slices');
      continue;
    }
    t.assert((await hashBytesAsync(big, chunk)) === whole, `sliced hash equals the hash (slices of ${chunk})`);
  }
  t.assert(whole !== hashBytes(big.subarray(1)), 'the hash depends on every byte');
}
