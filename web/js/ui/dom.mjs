// Small DOM and formatting helpers shared by the page's UI modules.

export const byId = (id) => document.getElementById(id);

export function textEl(tag, text, className) {
  const n = document.createElement(tag);
  n.textContent = text;
  if (className) n.className = className;
  return n;
}

// A status chip in the top bar (engine, model): data-state drives its colour.
export function setBadge(badge, stateName, text) {
  badge.dataset.state = stateName;
  badge.textContent = text;
  badge.title = text;
}

export function errText(e) {
  return (e && e.message) ? e.message : String(e);
}

export function fmt(v, digits = 3) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '—';
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2);
  return v.toFixed(digits);
}

export function fmtCount(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '—';
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return String(n);
}
