// Models taught in this browser, kept in IndexedDB so they survive a reload.
// Two object stores: `models` holds the small records the list shows
// ({id, name, created, frames, source, roi, size, backbone}); `bytes` holds
// each model file (a Blob) under the same id, read only when the model is loaded, so
// listing never pulls megabytes of weights out of the database.
//
// Every function rejects with a StoreError whose `code` tells why:
//   'unavailable'  no IndexedDB here (some privacy modes), or it cannot open
//   'quota'        the browser's storage for this site is full
//   'not_found'    no model with that id
//   'failed'       anything else (message from the browser)

const kDbName = 'flawlens';
const kDbVersion = 1;

export class StoreError extends Error {
  constructor(message, code, cause) {
    super(message);
    this.name = 'StoreError';
    this.code = code;
    this.cause = cause;
  }
}

function isQuota(e) {
  return Boolean(e) && (e.name === 'QuotaExceededError' || e.code === 22 ||
                        (e.inner && e.inner.name === 'QuotaExceededError'));
}

function wrap(e, what) {
  if (e instanceof StoreError) return e;
  if (isQuota(e)) return new StoreError(`the browser's storage for this page is full (${what})`, 'quota', e);
  const msg = e && e.message ? e.message : String(e || 'unknown error');
  return new StoreError(`${what}: ${msg}`, 'failed', e);
}

let dbPromise = null;

function openDb() {
  if (dbPromise) return dbPromise;
  dbPromise = new Promise((resolve, reject) => {
    let req;
    try {
      if (!globalThis.indexedDB) throw new Error('IndexedDB is not available in this browser');
      req = globalThis.indexedDB.open(kDbName, kDbVersion);
    } catch (e) {
      reject(new StoreError(`cannot store taught models here: ${e.message || e}`, 'unavailable', e));
      return;
    }
    req.onupgradeneeded = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains('models')) db.createObjectStore('models', { keyPath: 'id' });
      if (!db.objectStoreNames.contains('bytes')) db.createObjectStore('bytes');
    };
    req.onsuccess = () => {
      const db = req.result;
      // Another tab upgrading the database: let it, and reopen next time.
      db.onversionchange = () => { db.close(); dbPromise = null; };
      resolve(db);
    };
    req.onerror = () => reject(new StoreError(`cannot open the browser's database: ${req.error?.message || 'unknown error'}`,
                                              'unavailable', req.error));
    req.onblocked = () => reject(new StoreError('the browser\'s database is in use by another tab of this page; close it and retry',
                                                'unavailable'));
  });
  dbPromise.catch(() => { dbPromise = null; });
  return dbPromise;
}

// Runs `body(stores)` in one transaction; resolves with what body's last
// request produced (or body's return value) once the transaction committed.
async function transact(mode, names, what, body) {
  const db = await openDb();
  return new Promise((resolve, reject) => {
    let tx;
    let out;
    try {
      tx = db.transaction(names, mode);
      const stores = Object.fromEntries(names.map((n) => [n, tx.objectStore(n)]));
      out = body(stores, (v) => { out = v; });
    } catch (e) {
      try { tx?.abort(); } catch { /* already finished */ }
      reject(wrap(e, what));
      return;
    }
    tx.oncomplete = () => resolve(out);
    tx.onabort = () => reject(wrap(tx.error || new Error('aborted'), what));
    tx.onerror = (ev) => { ev.preventDefault?.(); };  // reported by onabort
  });
}

function newId() {
  const rnd = globalThis.crypto?.getRandomValues ? globalThis.crypto.getRandomValues(new Uint32Array(2))
    : [Math.random() * 2 ** 32, Math.random() * 2 ** 32];
  return `m-${Date.now().toString(36)}-${(rnd[0] >>> 0).toString(36)}${(rnd[1] >>> 0).toString(36)}`;
}

// Newest first.
export async function listTaught() {
  const rows = await transact('readonly', ['models'], 'listing taught models', ({ models }, set) => {
    const req = models.getAll();
    req.onsuccess = () => set(req.result || []);
  });
  return rows.sort((a, b) => String(b.created).localeCompare(String(a.created)));
}

// record: {name, created, frames, source, roi, backbone}; bytes: Uint8Array
// or ArrayBuffer (copied into the database). Resolves with the stored record.
export async function saveTaught(record, bytes) {
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const row = { ...record, id: newId(), size: u8.byteLength };
  await transact('readwrite', ['models', 'bytes'], `saving “${record.name}”`, ({ models, bytes: store }) => {
    // A Blob: the browser writes it to disk without serialising megabytes
    // on the page's thread (an ArrayBuffer is cloned there).
    store.put(new Blob([u8], { type: 'application/octet-stream' }), row.id);
    models.put(row);
  });
  return row;
}

export async function loadTaughtBytes(id) {
  const buf = await transact('readonly', ['bytes'], 'reading a taught model', ({ bytes }, set) => {
    const req = bytes.get(id);
    req.onsuccess = () => set(req.result);
  });
  if (!buf) throw new StoreError('that taught model is no longer stored in this browser', 'not_found');
  try {
    return buf instanceof Blob ? await buf.arrayBuffer() : buf;
  } catch (e) {
    throw wrap(e, 'reading a taught model');
  }
}

export async function getTaught(id) {
  const row = await transact('readonly', ['models'], 'reading a taught model', ({ models }, set) => {
    const req = models.get(id);
    req.onsuccess = () => set(req.result);
  });
  if (!row) throw new StoreError('that taught model is no longer stored in this browser', 'not_found');
  return row;
}

export async function renameTaught(id, name) {
  const clean = String(name || '').trim().slice(0, 120);
  if (!clean) throw new StoreError('a model needs a name', 'failed');
  return transact('readwrite', ['models'], 'renaming a taught model', ({ models }, set) => {
    const req = models.get(id);
    req.onsuccess = () => {
      if (!req.result) return;
      const row = { ...req.result, name: clean };
      models.put(row);
      set(row);
    };
  }).then((row) => {
    if (!row) throw new StoreError('that taught model is no longer stored in this browser', 'not_found');
    return row;
  });
}

export async function deleteTaught(id) {
  await transact('readwrite', ['models', 'bytes'], 'deleting a taught model', ({ models, bytes }) => {
    models.delete(id);
    bytes.delete(id);
  });
}
