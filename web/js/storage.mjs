// Per-model settings in localStorage (key: model name + hash of the model
// bytes). localStorage can be unavailable (privacy mode, quota): every call
// degrades to "nothing stored" instead of throwing.

// 64-bit FNV-1a as two 32-bit lanes -> 16 hex chars. Not cryptographic; it
// only tells models with the same name apart. Works without crypto.subtle
// (which plain-http hosts other than localhost do not have).
export function hashBytes(bytes) {
  const st = { h1: 0x811c9dc5, h2: 0x01000193 ^ bytes.length };
  hashRange(st, bytes, 0, bytes.length);
  return hashHex(st);
}

function hashRange(st, bytes, begin, end) {
  let { h1, h2 } = st;
  for (let i = begin; i < end; ++i) {
    const b = bytes[i];
    h1 = Math.imul(h1 ^ b, 0x01000193);
    h2 = Math.imul(h2 ^ b ^ (i & 0xff), 0x5bd1e995);
    h2 ^= h2 >>> 15;
  }
  st.h1 = h1;
  st.h2 = h2;
}

function hashHex({ h1, h2 }) {
  return (h1 >>> 0).toString(16).padStart(8, '0') + (h2 >>> 0).toString(16).padStart(8, '0');
}

// The same hash in slices of `chunk` bytes, yielding to the page between
// them: a model of tens of megabytes would otherwise block it for a long task.
export async function hashBytesAsync(bytes, chunk = 1 << 20) {
  const st = { h1: 0x811c9dc5, h2: 0x01000193 ^ bytes.length };
  for (let i = 0; i < bytes.length; i += chunk) {
    if (i > 0) await new Promise((resolve) => setTimeout(resolve, 0));
    hashRange(st, bytes, i, Math.min(bytes.length, i + chunk));
  }
  return hashHex(st);
}

const kPrefix = 'flawlens.threshold.v1.';

export function modelKey(name, hash) {
  return `${kPrefix}${encodeURIComponent(name)}.${hash}`;
}

export function loadThreshold(key) {
  try {
    const raw = globalThis.localStorage?.getItem(key);
    if (!raw) return null;
    const v = JSON.parse(raw);
    if (!v || typeof v.threshold !== 'number' || !Number.isFinite(v.threshold)) return null;
    return v;
  } catch {
    return null;
  }
}

export function saveThreshold(key, value) {
  try {
    globalThis.localStorage?.setItem(key, JSON.stringify(value));
    return true;
  } catch {
    return false;
  }
}

export function clearThreshold(key) {
  try {
    globalThis.localStorage?.removeItem(key);
  } catch { /* nothing stored */ }
}

// The model the page loads at start instead of the default one: the id of a
// taught model (js/taught-models.mjs), or null for the default model.
const kStartModel = 'flawlens.startModel.v1';

export function loadStartModel() {
  try {
    const v = globalThis.localStorage?.getItem(kStartModel);
    return v || null;
  } catch {
    return null;
  }
}

export function saveStartModel(id) {
  try {
    if (id) globalThis.localStorage?.setItem(kStartModel, String(id));
    else globalThis.localStorage?.removeItem(kStartModel);
    return true;
  } catch {
    return false;
  }
}

// How many threads the engine runs: 'auto' (the default) or a count.
const kThreads = 'flawlens.threads.v1';

export function loadThreadsSetting() {
  try {
    const v = globalThis.localStorage?.getItem(kThreads);
    if (v === null || v === undefined || v === 'auto') return 'auto';
    const n = Number(v);
    return Number.isInteger(n) && n >= 1 ? n : 'auto';
  } catch {
    return 'auto';
  }
}

export function saveThreadsSetting(value) {
  try {
    if (value === 'auto') globalThis.localStorage?.removeItem(kThreads);
    else globalThis.localStorage?.setItem(kThreads, String(value));
    return true;
  } catch {
    return false;
  }
}
