// Writes flawlens model files (safetensors + JSON metadata, model/FORMAT.md)
// from JavaScript: for the Embind API test and the benchmarks. It is
// also a check that the format is as open as claimed: ~60 lines, no library.

// The canonical layout of the C++ writer (src/model/model_writer.cc): the
// header is "__metadata__" (its keys sorted) then the tensors sorted by name,
// each {data_offsets, dtype, shape}; compact JSON padded with spaces to a
// multiple of 8 bytes; F32 data in name order. Same spec, same bytes:
// tests/unit/model_format_test.cc (JsWriterWritesTheSameBytes) checks it.
//
// graph, preprocess, postprocess, calibration, card: objects, or JSON text
// written as it is. tensors: [{name, shape: [..], data: Float32Array | number[]}]
export function writeModel({ graph, preprocess, postprocess = {}, calibration = {}, card = {}, tensors }) {
  const text = (v) => (typeof v === 'string' ? v : JSON.stringify(v));
  const byName = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
  const sorted = [...tensors].sort((a, b) => byName(a.name, b.name));
  const meta = {
    calibration: text(calibration), card: text(card), format: 'flawlens', format_version: '1',
    graph: text(graph), postprocess: text(postprocess), preprocess: text(preprocess),
  };
  const header = { __metadata__: meta };
  let offset = 0;
  for (const t of sorted) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) throw new Error(`tensor ${t.name}: shape ${t.shape} != ${t.data.length} values`);
    header[t.name] = { data_offsets: [offset, offset + 4 * n], dtype: 'F32', shape: t.shape };
    offset += 4 * n;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;  // safetensors pads with spaces to 8 bytes
  const head = new Uint8Array(padded).fill(0x20);
  head.set(json);
  const out = new Uint8Array(8 + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(head, 8);
  let pos = 8 + padded;
  for (const t of sorted) {
    const bytes = new Uint8Array(Float32Array.from(t.data).buffer);  // little endian on every JS engine we run
    out.set(bytes, pos);
    pos += bytes.length;
  }
  return out;
}

// HWIO [kh, kw, cin, cout] (TensorFlow) -> OHWI [cout, kh, kw, cin] (flawlens)
export function hwioToOhwi(w, kh, kw, cin, cout) {
  const o = new Float32Array(w.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < cin; i++)
        for (let c = 0; c < cout; c++) o[((c * kh + y) * kw + x) * cin + i] = w[((y * kw + x) * cin + i) * cout + c];
  return o;
}

// [in, out] -> [out, in]
export function transpose(w, rows, cols) {
  const o = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) o[c * rows + r] = w[r * cols + c];
  return o;
}

// Deterministic uniform [-lim, lim) (mulberry32).
export function uniform(n, lim, seed) {
  let a = seed | 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    out[i] = ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1) * lim;
  }
  return out;
}
