// Rewrite a flawlens .safetensors file with a changed model card (same
// weights): a second, valid model for model-switching tests.
export function withCard(bytes, patch) {
  return withMeta(bytes, 'card', patch);
}

// The model file with keys of one metadata section (card, preprocess, ...) replaced.
export function withMeta(bytes, section, patch) {
  const buf = Buffer.from(bytes);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const old = JSON.parse(header.__metadata__[section] || '{}');
  header.__metadata__[section] = JSON.stringify({ ...old, ...patch });
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  const head = Buffer.alloc(padded, 0x20);
  json.copy(head);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(padded));
  return Buffer.concat([len, head, buf.subarray(8 + n)]);
}
