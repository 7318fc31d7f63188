// The camera's region of interest follows the loaded model's input aspect
// (web/js/ui/camera.mjs, pure helpers under node): the centre button's box
// and a dragged box of a model that stretches the region onto its input.
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export default async function (t) {
  const { centredRoi, aspectRect } = await import(pathToFileURL(path.join(t.repo, 'web', 'js', 'ui', 'camera.mjs')).href);
  const near = (a, b) => Math.abs(a - b) <= 1;

  // A square model on a 640x480 picture: a square box in the middle.
  const sq = centredRoi(640, 480, 1);
  t.assert(sq.w === sq.h && near(sq.x, (640 - sq.w) / 2) && near(sq.y, (480 - sq.h) / 2), `square model: square, centred box (${JSON.stringify(sq)})`);
  // A 256x640 model (tall photos): the box is 2:5, inside the picture.
  const tall = centredRoi(640, 480, 256 / 640);
  t.assert(near(tall.w / tall.h * 640, 256) && tall.y >= 0 && tall.y + tall.h <= 480, `tall model: 2:5 box (${JSON.stringify(tall)})`);
  // A wide 512x256 model on a portrait picture.
  const wide = centredRoi(480, 640, 2);
  t.assert(near(wide.w, 2 * wide.h) && wide.x >= 0 && wide.x + wide.w <= 480, `wide model: 2:1 box (${JSON.stringify(wide)})`);
  // No model: the picture's own aspect.
  const none = centredRoi(640, 480, 0);
  t.assert(near(none.w * 480, none.h * 640), `no model: the picture's aspect (${JSON.stringify(none)})`);

  // Dragging keeps the model's aspect in every direction and stays inside.
  for (const [s, p] of [[{ x: 10, y: 10 }, { x: 200, y: 40 }], [{ x: 600, y: 400 }, { x: 500, y: 100 }],
                        [{ x: 630, y: 20 }, { x: 0, y: 479 }]]) {
    for (const a of [1, 0.4, 2]) {
      const r = aspectRect(s, p, a, 640, 480);
      t.assert(Math.abs(r.w / r.h - a) < 1e-9, `drag ${JSON.stringify(s)} -> ${JSON.stringify(p)}, aspect ${a}: ${JSON.stringify(r)}`);
      t.assert(r.x >= -1e-9 && r.y >= -1e-9 && r.x + r.w <= 640 + 1e-9 && r.y + r.h <= 480 + 1e-9, `inside the picture: ${JSON.stringify(r)}`);
    }
  }
}
