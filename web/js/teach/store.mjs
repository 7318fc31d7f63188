// The Teach panel's list of taught models kept in this browser (IndexedDB): save, list, rename,
// delete, the start model.
// Methods of TeachPanel (../ui/teach.mjs), mixed into its prototype: `this` is the panel.
import { saveStartModel, loadStartModel as storedStartModel } from '../storage.mjs';
import { listTaught, saveTaught, loadTaughtBytes, getTaught, renameTaught, deleteTaught } from '../taught-models.mjs';
import { textEl, errText } from '../ui/dom.mjs';
import { fileSafe } from './shared.mjs';

function sizeText(bytes) {
  if (!(bytes > 0)) return '';
  return bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${Math.max(1, Math.round(bytes / 1e3))} kB`;
}

export const storeMethods = {
  async store() {
    const t = this.taught;
    if (!t) return;
    try {
      const row = await saveTaught(t.record, t.bytes);
      t.storedId = row.id;
      const m = this.getModel();
      if (m && m.name === t.name && !m.storedId) m.storedId = row.id;
      this.note(`${this.lastNote} Saved in this browser.`);
    } catch (e) {
      const why = e.code === 'quota'
        ? 'the browser\'s storage for this page is full'
        : errText(e);
      this.fail(`“${t.name}” could not be saved in this browser (${why}). It is loaded and in use; use “Download model” to ` +
                'keep it, or delete older taught models to make room.');
    }
    await this.refreshList();
  },

  async refreshList() {
    try {
      this.stored = await listTaught();
    } catch (e) {
      this.stored = [];
      this.els.list.replaceChildren(textEl('li', `Taught models cannot be kept in this browser: ${errText(e)}.`, 'hint'));
      return;
    }
    this.renderList();
  },

  renderList() {
    const { els } = this;
    const start = storedStartModel();
    els.startDefault.checked = !start || !this.stored.some((r) => r.id === start);
    if (!this.stored.length) {
      els.list.replaceChildren(textEl('li', 'No taught models in this browser yet.', 'hint'));
      return;
    }
    els.list.replaceChildren(...this.stored.map((row) => this.renderRow(row, start)));
  },

  renderRow(row, start) {
    const li = document.createElement('li');
    li.className = 'taught-row';
    li.dataset.id = row.id;
    const head = document.createElement('div');
    head.className = 'taught-head';
    const radio = document.createElement('input');
    radio.type = 'radio';
    radio.name = 'start-model';
    radio.value = row.id;
    radio.checked = row.id === start;
    radio.setAttribute('aria-label', `Start the page with “${row.name}”`);
    radio.title = 'Load this model when the page starts';
    radio.addEventListener('change', () => { if (radio.checked) this.setStartModel(row.id); });
    const name = textEl('span', row.name, 'taught-name');
    head.append(radio, name);
    const when = row.created ? new Date(row.created) : null;
    const meta = [when && !Number.isNaN(when.getTime()) ? when.toLocaleString() : null,
                  `${row.frames} ${row.source === 'photos' ? 'photos' : 'frames'}`,
                  row.roi ? 'region' : null, sizeText(row.size)].filter(Boolean).join(' · ');
    const actions = document.createElement('div');
    actions.className = 'taught-actions';
    const btn = (label, aria, fn) => {
      const b = textEl('button', label, 'btn small');
      b.type = 'button';
      b.setAttribute('aria-label', aria);
      b.addEventListener('click', fn);
      return b;
    };
    const use = btn('Use', `Use “${row.name}”`, () => this.useStored(row.id));
    use.dataset.action = 'use';
    const rename = btn('Rename', `Rename “${row.name}”`, () => this.startRename(li, row));
    rename.dataset.action = 'rename';
    const del = btn('Delete', `Delete “${row.name}”`, () => {
      // Two clicks: the first arms the button for a few seconds.
      if (del.dataset.armed === 'true') { this.remove(row.id); return; }
      del.dataset.armed = 'true';
      del.textContent = 'Really delete?';
      setTimeout(() => { del.dataset.armed = 'false'; del.textContent = 'Delete'; }, 4000);
    });
    del.dataset.action = 'delete';
    actions.append(use, rename, del);
    li.append(head, textEl('span', meta, 'taught-meta'), actions);
    return li;
  },

  startRename(li, row) {
    const name = li.querySelector('.taught-name');
    const input = document.createElement('input');
    input.type = 'text';
    input.value = row.name;
    input.maxLength = 120;
    input.className = 'taught-rename';
    input.setAttribute('aria-label', `New name for “${row.name}” (Enter to save, Escape to cancel)`);
    name.replaceWith(input);
    input.focus();
    input.select();
    let done = false;
    const finish = async (save) => {
      if (done) return;
      done = true;
      const value = input.value.trim();
      if (save && value && value !== row.name) {
        try {
          await renameTaught(row.id, value);
          const m = this.getModel();
          if (m && m.storedId === row.id) m.name = value;
          this.note(`Renamed to “${value}”.`);
        } catch (e) {
          this.fail(`Could not rename “${row.name}”: ${errText(e)}`);
        }
      }
      await this.refreshList();
    };
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') { e.preventDefault(); finish(true); }
      if (e.key === 'Escape') { e.preventDefault(); finish(false); }
    });
    input.addEventListener('blur', () => finish(true));
  },

  async remove(id) {
    const row = this.stored.find((r) => r.id === id);
    try {
      await deleteTaught(id);
      if (storedStartModel() === id) saveStartModel(null);
      if (this.taught && this.taught.storedId === id) this.taught.storedId = null;
      this.note(`Deleted “${row ? row.name : id}” from this browser${this.getModel()?.storedId === id ? ' (it stays loaded until another model is)' : ''}.`);
    } catch (e) {
      this.fail(`Could not delete it: ${errText(e)}`);
    }
    await this.refreshList();
  },

  setStartModel(id) {
    if (!saveStartModel(id)) {
      this.fail('This browser does not let the page store settings, so the start model cannot be remembered.');
      return;
    }
    const row = this.stored.find((r) => r.id === id);
    this.note(id ? `The page will start with “${row ? row.name : id}”.` : 'The page will start with its default model.');
    this.renderList();
  },

  // Loads a stored taught model; false (with a message) when it cannot.
  async useStored(id, { atStart = false } = {}) {
    let row, bytes;
    try {
      row = await getTaught(id);
      bytes = await loadTaughtBytes(id);
    } catch (e) {
      const text = atStart
        ? `The start model stored in this browser could not be read (${errText(e)}); the default model is used instead.`
        : `Could not read the taught model: ${errText(e)}`;
      this.fail(text);
      if (atStart && e.code === 'not_found') saveStartModel(null);
      return false;
    }
    const u8 = new Uint8Array(bytes);  // loadBytes copies a typed array: ours stays for "Download model"
    const ok = await this.models.loadBytes(u8, `${fileSafe(row.name)}.safetensors`, { name: row.name });
    if (ok) {
      const m = this.getModel();
      if (m) m.storedId = id;
      this.taught = { name: row.name, bytes: u8, storedId: id, record: row };
      this.updateControls();
    } else if (atStart) {
      this.fail(`The start model “${row.name}” could not be loaded; the default model is used instead.`);
    }
    return ok;
  },

  // At page start: the stored start model if there is one. False: load the default.
  async loadStartModel() {
    const id = storedStartModel();
    if (!id) return false;
    return this.useStored(id, { atStart: true });
  },
};
