// Helpers of the Teach panel's parts (../ui/teach.mjs, record / fit / store / export).

// The engine needs 6 frames (fit::kMinFitImages) to fit and to check its
// threshold on frames each fold did not see; fewer than about 20 give a
// threshold it warns about.
export const kMinFit = 6;

export function stamp(d = new Date()) {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}`;
}

export function fileSafe(name) {
  return String(name).replace(/[^\w.-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 80) || 'model';
}
