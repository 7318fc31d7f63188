// Demo images of the built site (model/demo/index.json): good_* are good,
// everything else is defective.
import fs from 'node:fs';
import path from 'node:path';

export function demoImages(site) {
  const dir = path.join(site, 'model', 'demo');
  const indexFile = path.join(dir, 'index.json');
  if (!fs.existsSync(indexFile)) return { good: [], bad: [] };
  const names = JSON.parse(fs.readFileSync(indexFile, 'utf8'));
  const files = names.map((n) => path.join(dir, n));
  const isGood = (f) => /^good/i.test(path.basename(f));
  return { good: files.filter(isGood), bad: files.filter((f) => !isGood(f)) };
}

// Real photos (research data, read-only; may be absent): the data sets'
// folder beside the repository, or $FLAWLENS_DATA.
const kRepo = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../..');
export const kDataRoot = process.env.FLAWLENS_DATA || path.resolve(kRepo, '../shared/data');
export function realPhotos(root = kDataRoot, perClass = 3) {
  const out = [];
  const pick = (dir, label) => {
    if (!fs.existsSync(dir)) return;
    const files = fs.readdirSync(dir).filter((f) => /\.(png|jpe?g|bmp)$/i.test(f)).sort().slice(0, perClass);
    for (const f of files) out.push({ file: path.join(dir, f), label });
  };
  pick(path.join(root, 'mvtec-bottle/test/good'), 'good');
  pick(path.join(root, 'mvtec-bottle/test/broken_large'), 'bad');
  pick(path.join(root, 'magnetic-tile/val/good'), 'good');
  pick(path.join(root, 'magnetic-tile/val/blowhole'), 'bad');
  return out;
}
