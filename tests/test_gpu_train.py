"""scripts/gpu_train.sh --dry-run (the GPU training run's logic on the CPU, tiny sizes), the report it writes, and
scripts/pack_train_data.py (the packed data folder the run carries)."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from helpers import write_images

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = ('NODEVDSR_T291_gpu', 'VDSRt_T291_gpu')
EVAL = [f'{s}_x{x}' for s in ('Set5', 'Set14') for x in ('1.5', '2', '3', '4')]


def env():
    e = dict(os.environ, OMP_NUM_THREADS='1')
    e['PYTHONPATH'] = ROOT + (os.pathsep + e['PYTHONPATH'] if e.get('PYTHONPATH') else '')
    return e


def pack(src, dest, *extra):
    return subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', 'pack_train_data.py'), '--src', str(src),
                           '--dest', str(dest), *extra], env=env(), capture_output=True, text=True, timeout=120)


@pytest.fixture(scope='module')
def packed(tmp_path_factory):
    """Tiny T91 / BSD200 / Set5 / Set14 folders (one small training image, one grey Set14 image), packed."""
    src = tmp_path_factory.mktemp('src')
    for name in ('train/BSD200', 'train/T91', 'benchmark/Set5', 'benchmark/Set14'):
        sizes = [(48, 64), (64, 40), (40, 44)] + ([(30, 60)] if name == 'train/T91' else [])
        write_images(str(src / name / 'HR'), sizes, grey=(1,) if name == 'benchmark/Set14' else ())
    dest = src.parent / (src.name + '_packed')
    proc = pack(src, dest, '--min-side', '40')
    assert proc.returncode == 0, proc.stderr
    return src, dest, proc.stdout


def test_pack_is_lossless_and_leaves_out_small_training_images(packed):
    src, dest, stdout = packed
    info = json.loads((dest / 'pack.json').read_text())
    assert info['sets']['train/T91'] == {**info['sets']['train/T91'], 'images': 3, 'dropped': 1}
    assert 'pack_train_data: ' in stdout and 'train/T91: 3 images (1 under 40 px left out)' in stdout
    assert sorted(os.listdir(dest / 'benchmark' / 'Set14' / 'HR')) == ['img0.webp', 'img1.png', 'img2.webp']
    for name in ('train/T91', 'benchmark/Set14'):
        for f in sorted(os.listdir(dest / name / 'HR')):
            orig = cv2.imread(str(src / name / 'HR' / (os.path.splitext(f)[0] + '.png')), cv2.IMREAD_UNCHANGED)
            assert np.array_equal(cv2.imread(str(dest / name / 'HR' / f), cv2.IMREAD_UNCHANGED), orig), f


def test_pack_refuses_to_replace_a_folder(packed, tmp_path):
    src, dest, _ = packed
    before = sorted(os.listdir(dest))
    proc = pack(src, dest)
    assert proc.returncode == 2 and proc.stderr.strip() == f'pack_train_data: {dest} exists (use --force to replace it)'
    assert sorted(os.listdir(dest)) == before
    proc = pack(tmp_path / 'nothing', tmp_path / 'out')
    assert proc.returncode == 2 and 'no ' in proc.stderr and not (tmp_path / 'out').exists()


def test_dry_run_trains_both_models_and_writes_the_report(packed, tmp_path):
    """Every part runs (speed, both trainings, report); the JSON report holds what docs/gpu.md promises."""
    out = tmp_path / 'out'
    proc = subprocess.run(['bash', os.path.join(ROOT, 'scripts', 'gpu_train.sh'), '--dry-run', '--out', str(out),
                           '--data', str(packed[1])], cwd=str(tmp_path), env=dict(env(), TMPDIR=str(tmp_path)),
                          capture_output=True, text=True, timeout=900)
    console = proc.stdout + proc.stderr
    assert proc.returncode == 0, console[-3000:]
    files = {'gpu_train.json', 'gpu_train.log', 'parts.tsv', 'speed.json', 'bundled.json', 'experiments'}
    files |= {f'{n}.{ext}' for n in NAMES for ext in ('pth', 'json', 'log')}
    assert set(os.listdir(out)) == files
    report = json.loads((out / 'gpu_train.json').read_text())
    assert report['missing'] == []
    assert [p['part'] for p in report['parts']] == ['speed', 'NODEVDSR', 'VDSRt', 'bundled']
    assert {p['exit'] for p in report['parts']} == {'0'}
    cases = {(c['model'], c['path']): c for c in report['speed']['cases']}
    assert set(cases) == {('NODE-VDSR', 'eager'), ('VDSR+t', 'eager'), ('NODE-RDN', 'eager')}
    assert all(c['status'] == 'ok' and c['it_per_s'] > 0 and c['amp'] == 'bf16' for c in cases.values())
    assert cases[('NODE-VDSR', 'eager')]['network']['ode'] == {'method': 'rk4', 'num_steps': 1}
    assert cases[('NODE-RDN', 'eager')]['network']['ode']['checkpoint'] is True
    for model, name in zip(('NODE-VDSR', 'VDSR+t'), NAMES):
        rec = report['trainings'][model]
        assert rec['name'] == name and rec['iters'] == 3 and rec['it_per_s'] > 0 and 0 <= rec['data_wait_fraction'] < 1
        assert rec['random_batch_it_per_s'] == cases[(model, 'eager')]['it_per_s']
        assert rec['real_over_random'] == round(rec['it_per_s'] / rec['random_batch_it_per_s'], 3)
        assert list(rec['eval']) == EVAL
        assert all(v['images'] == 2 and 10 < v['psnr'] < 60 and 0 < v['ssim'] <= 1 for v in rec['eval'].values())
        assert rec['amp'] == 'bf16' and rec['ema_decay'] > 0 and rec['train_images'] == 6
        weights = torch.load(out / f'{name}.pth', weights_only=True)
        assert set(weights) == {'params_ema', 'params'}
        assert rec['weights']['bytes'] == os.path.getsize(out / f'{name}.pth')
        assert all(v.dtype == torch.float32 for v in weights['params_ema'].values())
        assert f'gpu_train: {name}: 3 iterations' in (out / f'{name}.log').read_text()
    assert 'NODE-VDSR: 3 it in' in proc.stdout
    assert set(report['bundled']['models']) == {'NODEVDSR_S', 'VDSRt_S'}
    assert set(report['psnr']) == {'NODE-VDSR', 'VDSR+t', 'NODEVDSR_S', 'VDSRt_S'}
    assert all(list(row) == EVAL for row in report['psnr'].values())
    better = all(report['psnr']['NODE-VDSR'][k] > report['psnr']['NODEVDSR_S'][k] for k in EVAL)
    assert report['nodevdsr_beats_bundled_everywhere'] is better


def test_report_marks_missing_parts_and_compares_compiled_paths(tmp_path):
    """A run cut short: no VDSR+t file; a compiled case is set against the eager case of its model."""
    sys.path.insert(0, ROOT)
    from benchmarks.gpu_train_report import build_report, summary
    cases = [{'model': 'NODE-VDSR', 'path': 'eager', 'status': 'ok', 'it_per_s': 10.0, 'peak_alloc_gib': 6.0},
             {'model': 'NODE-VDSR', 'path': 'compile', 'status': 'ok', 'it_per_s': 12.5, 'loss_diff': 1e-7,
              'max_grad_diff': 3e-8, 'max_grad': 0.5, 'max_weight_diff': 2e-7, 'max_weight_change': 1e-3,
              'peak_alloc_gib': 5.0},
             {'model': 'NODE-RDN', 'path': 'compile', 'status': 'error', 'error': 'RuntimeError: x'}]
    (tmp_path / 'speed.json').write_text(json.dumps({'cases': cases}))
    rec = {'model': 'NODE-VDSR', 'name': NAMES[0], 'iters': 100, 'train_s': 20.0, 'it_per_s': 5.0,
           'data_wait_fraction': 0.5, 'eval': {'Set5_x2': {'psnr': 30.0}}}
    (tmp_path / f'{NAMES[0]}.json').write_text(json.dumps(rec))
    (tmp_path / 'parts.tsv').write_text('speed\t0\t50\t120\nNODEVDSR\t0\t200\t225\nVDSRt\t124\t225\t225\n')
    report = build_report(str(tmp_path), NAMES)
    assert report['missing'] == [NAMES[1], 'bundled'] and report['nodevdsr_beats_bundled_everywhere'] is None
    assert report['trainings']['NODE-VDSR']['real_over_random'] == 0.5
    assert report['compile_vs_eager'] == {'NODE-VDSR compile': {
        'speedup': 1.25, 'loss_diff': 1e-7, 'max_grad_diff': 3e-8, 'max_grad': 0.5, 'max_weight_diff': 2e-7,
        'max_weight_change': 1e-3,
        'peak_alloc_gib': 5.0, 'eager_peak_alloc_gib': 6.0}}
    assert report['parts'][2] == {'part': 'VDSRt', 'exit': '124', 'seconds': '225', 'limit_s': '225'}
    assert 'with real data, 10.0 with random batches, data wait 50.0%' in summary(report)
