#!/usr/bin/env python3
"""From-scratch vs backbone vs combined, per defect type, on one dataset split.

    tools/eval/fusion_table.py DATA [--flawlens BIN] [--work DIR] [--split NAME]
                               [--threads N] [--train-threads N]

Trains (unless DIR already holds them) the two models with the same data and
the same command line but for the way of training:

    flawlens train DATA --out DIR/scratch.safetensors --from-scratch --threads T
    flawlens train DATA --out DIR/backbone.safetensors --threads T

evaluates each, and the two fusions of their calibrated scores and maps
(`flawlens eval SCRATCH DATA --fuse BACKBONE --fuse-rule mean|max`), and
prints a Markdown table of image AUROC and pixel AUROC per defect type. The
image AUROC of each fusion is also recomputed here from the two models' own
per-image scores (eval --json), as a check on eval --fuse.

python3 only (no numpy). The from-scratch training is time-budgeted (10 min
by default), so its result depends on how fast the machine steps: note the
load beside the numbers.
"""
import argparse
import json
import os
import subprocess
import sys


def auroc(scores, labels):
    """Mann-Whitney AUROC with ties counted half; None without both classes."""
    pos = sum(1 for l in labels if l)
    neg = len(labels) - pos
    if pos == 0 or neg == 0:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    rank_sum = 0.0
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        avg_rank = (i + j) / 2.0 + 1.0
        rank_sum += avg_rank * sum(1 for k in range(i, j + 1) if labels[order[k]])
        i = j + 1
    return (rank_sum - pos * (pos + 1) / 2.0) / (pos * neg)


def run(cmd):
    print('$ ' + ' '.join(cmd), file=sys.stderr)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # eval exits 3 when some images could not be scored; they are left out.
    if r.returncode not in (0, 3):
        sys.exit('failed (%d): %s\n%s' % (r.returncode, ' '.join(cmd), r.stderr))
    return r.stdout


def evaluate(flawlens, model, data, split, threads, out_json, extra=()):
    cmd = [flawlens, 'eval', model, data, '--threads', str(threads), '--json', out_json]
    if split:
        cmd += ['--split', split]
    run(cmd + list(extra))
    with open(out_json) as f:
        return json.load(f)


def fused_image_auroc(a, b, rule):
    """Per type: image AUROC of rule(score_a, score_b), from two eval JSONs."""
    fuse = (lambda x, y: 0.5 * (x + y)) if rule == 'mean' else max
    rows = {}
    images = []
    for ia, ib in zip(a['images'], b['images']):
        if ia['path'] != ib['path']:
            sys.exit('the two evaluations list different images')
        if 'score' not in ia or 'score' not in ib or ia['score'] is None or ib['score'] is None:
            continue
        images.append((ia['type'], fuse(ia['score'], ib['score'])))
    types = ['all'] + sorted(a['per_type'].keys())
    for t in types:
        s = [sc for ty, sc in images if t == 'all' or ty == 'good' or ty == t]
        l = [ty != 'good' for ty, sc in images if t == 'all' or ty == 'good' or ty == t]
        rows[t] = auroc(s, l)
    return rows


def metric(j, group, key):
    row = j['metrics'] if group == 'all' else j['per_type'].get(group, {})
    return row.get(key)


def cell(v):
    return '-' if v is None else '%.3f' % v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('data')
    ap.add_argument('--flawlens', default='build/native-release/tools/flawlens')
    ap.add_argument('--work', default='build/fusion', help='models and JSON files go here')
    ap.add_argument('--split', default='', help='eval split (default: val, else test)')
    ap.add_argument('--threads', type=int, default=2, help='eval threads')
    ap.add_argument('--train-threads', type=int, default=1, help='train --threads')
    o = ap.parse_args()
    os.makedirs(o.work, exist_ok=True)
    models = {
        'scratch': (os.path.join(o.work, 'scratch.safetensors'), ['--from-scratch']),
        'backbone': (os.path.join(o.work, 'backbone.safetensors'), []),
    }
    for path, extra in models.values():
        if not os.path.exists(path):
            run([o.flawlens, 'train', o.data, '--out', path, '--threads', str(o.train_threads)]
                + extra)
    scratch, backbone = models['scratch'][0], models['backbone'][0]
    j = {
        'scratch': evaluate(o.flawlens, scratch, o.data, o.split, o.threads,
                            os.path.join(o.work, 'scratch.json')),
        'backbone': evaluate(o.flawlens, backbone, o.data, o.split, o.threads,
                             os.path.join(o.work, 'backbone.json')),
    }
    for rule in ('mean', 'max'):
        j[rule] = evaluate(o.flawlens, scratch, o.data, o.split, o.threads,
                           os.path.join(o.work, 'fused_%s.json' % rule),
                           ['--fuse', backbone, '--fuse-rule', rule])
        check = fused_image_auroc(j['scratch'], j['backbone'], rule)
        for group, v in check.items():
            got = metric(j[rule], group, 'image_auroc')
            if (v is None) != (got is None) or (v is not None and abs(v - got) > 1e-4):
                sys.exit('eval --fuse %s and the scores disagree on %s: %s vs %s'
                         % (rule, group, got, v))

    cols = ['scratch', 'backbone', 'mean', 'max']
    names = {'scratch': 'from scratch', 'backbone': 'backbone', 'mean': 'combined (mean)',
             'max': 'combined (max)'}
    groups = ['all'] + sorted(j['scratch']['per_type'].keys())
    ds = j['scratch']['dataset']
    print('%s, split %s: %d good, %d defective images'
          % (os.path.basename(os.path.normpath(o.data)), ds['split'],
             j['scratch']['counts']['good'], j['scratch']['counts']['defective']))
    print()
    def table(title, key):
        print('| %s | ' % title + ' | '.join(names[c] for c in cols) + ' |')
        print('|---|' + '---:|' * len(cols))
        for g in groups:
            print('| %s | ' % g + ' | '.join(cell(metric(j[c], g, key)) for c in cols) + ' |')

    table('image AUROC', 'image_auroc')
    if j['scratch']['counts']['masks'] > 0:
        print()
        table('pixel AUROC', 'pixel_auroc')
    print()
    print('image AUROC 95% interval, all images: ' + ', '.join(
        '%s %s-%s' % (names[c], cell(j[c]['metrics']['image_auroc_ci95'][0]),
                      cell(j[c]['metrics']['image_auroc_ci95'][1])) for c in cols))


if __name__ == '__main__':
    main()
