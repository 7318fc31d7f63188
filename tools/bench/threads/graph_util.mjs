// Small helpers shared by the threads case of the page benchmark in node
// (page/threads.mjs) and in the browser (threads/anchors.mjs).

// A seeded pseudo-random generator in [0, 1): the same input on every engine.
export function mulberry32(a) {
  return () => {
    a |= 0; a = (a + 0x6D2B79F5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// A TF.js graph model's input placeholder is fixed (centernet: 512x512);
// tfjs-converter checks inputs against it, so set it to [1, H, W, C] in the
// parsed model.json (and in its signature, when there is one). Returns the
// placeholder node (its name is the input's key for execute()).
export function patchGraphInput(json, [H, W, C]) {
  const placeholders = json.modelTopology.node.filter((n) => n.op === 'Placeholder');
  if (placeholders.length !== 1) throw new Error(`graph model has ${placeholders.length} placeholders, expected 1`);
  const ph = placeholders[0];
  ph.attr.shape.shape.dim = [1, H, W, C].map((size) => ({ size: String(size) }));
  const sig = json.signature && json.signature.inputs && json.signature.inputs[ph.name];
  if (sig && sig.tensorShape) sig.tensorShape.dim = ph.attr.shape.shape.dim;
  return ph;
}

// The weight shards, in manifest order, as one buffer.
export function concatBytes(parts) {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  parts.reduce((o, p) => { out.set(p, o); return o + p.length; }, 0);
  return out;
}
