// Helpers of the Teach panel's parts (../ui/teach.mjs, record / fit / store / export).

// The fewest frames the engine fits on (fit::kMinFitImages: enough to check
// its threshold on frames each fold did not see; fewer than about 20 give a
// threshold it warns about). teachBegin's answer carries it; the panel keeps
// that answer in `begun` (null before the first frame).
export function minFit(panel) {
  return panel.begun?.minImages ?? Infinity;
}

export function stamp(d = new Date()) {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}`;
}

export function fileSafe(name) {
  return String(name).replace(/[^\w.-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 80) || 'model';
}
