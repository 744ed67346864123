"""nodesr benchmark on a tiny generated dataset: csv + md, plug-in models, LR folders."""
import csv
import os

import cv2
import numpy as np
import pytest

import nodesr_arch  # noqa: F401,I001
from nodesr_arch.commands import benchmark, prepare
from nodesr_arch.data.scale_space import enlarge, make_pair
from nodesr_arch.file_io import read_image
from nodesr_arch.metrics import image_metrics


@pytest.fixture
def tiny(tmp_path):
    root = str(tmp_path / 'Tiny')
    os.makedirs(os.path.join(root, 'HR'))
    rng = np.random.default_rng(0)
    for name, (h, w) in [('a', (41, 50)), ('b', (36, 45))]:
        small = rng.integers(0, 256, (h // 3, w // 3, 3), dtype=np.uint8)
        cv2.imwrite(os.path.join(root, 'HR', name + '.png'), cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC))
    return root


def _rows(out):
    with open(os.path.join(out, 'results.csv')) as f:
        return list(csv.DictReader(f))


def test_bicubic_csv_and_markdown(tiny, tmp_path):
    out = str(tmp_path / 'out')
    argv = ['--model', 'bicubic', '--data', tiny, '--scales', '2', '1.5:1.7:0.1', '--protocol', 'modcrop',
            '--out', out, '--quiet', '--per-image']
    assert benchmark.main(argv) == 0
    rows = _rows(out)
    assert list(rows[0]) == ['dataset', 'scale', 'model', 'psnr', 'ssim']
    expected = [('Tiny', s, 'bicubic') for s in ('2', '1.5', '1.6', '1.7')]
    assert [(r['dataset'], r['scale'], r['model']) for r in rows] == expected
    # the x1.6 figure is the mean over the images of the protocol pair measured directly
    scores = []
    for name in ('a', 'b'):
        hr, grey, _ = read_image(os.path.join(tiny, 'HR', name + '.png'), as_float=True)
        lr, gt, out_size = make_pair(hr, 1.6, 'modcrop')
        scores.append(tuple(image_metrics(enlarge(lr, 1.6, out_size), gt, 1.6, grey).values()))
    assert float(rows[2]['psnr']) == pytest.approx(np.mean(scores, axis=0)[0], abs=1e-3)
    assert float(rows[2]['ssim']) == pytest.approx(np.mean(scores, axis=0)[1], abs=1e-4)
    md = open(os.path.join(out, 'results.md')).read()
    assert '## Tiny' in md and '| x1.6 |' in md and 'nodesr benchmark --model bicubic' in md
    assert len(open(os.path.join(out, 'per_image.csv')).read().splitlines()) == 1 + 2 * 4


def test_plugin_models_are_loaded_lazily(tiny, tmp_path, monkeypatch):
    import nodesr_arch.api as api

    class Blurry:
        name = 'blurry'

        def super_resolve(self, lr, scale, out_size=None, self_ensemble=False, **kwargs):
            assert self_ensemble is True
            return cv2.GaussianBlur(benchmark.Bicubic().super_resolve(lr, scale, out_size), (5, 5), 2)

    seen = []
    monkeypatch.setattr(api, 'load_model', lambda spec, device='cpu', amp=None: seen.append(spec) or Blurry())
    out = str(tmp_path / 'out')
    argv = ['--model', 'bicubic', 'ckpt.pth', 'mine=other.yml', '--data', tiny, '--scales', '3', '--out', out,
            '--quiet', '--self-ensemble']
    assert benchmark.main(argv) == 0
    rows = _rows(out)
    assert seen == ['ckpt.pth', 'other.yml'] and [r['model'] for r in rows] == ['bicubic', 'blurry', 'mine']
    assert float(rows[1]['psnr']) < float(rows[0]['psnr']) and rows[1]['psnr'] == rows[2]['psnr']


def test_lr_folders_from_prepare_match_the_protocol(tiny, tmp_path):
    assert prepare.main(['lr', '--data', tiny, '--scales', '2', '2.5']) == 0
    made, read = str(tmp_path / 'made'), str(tmp_path / 'read')
    common = ['--data', tiny, '--scales', '2', '2.5', '--quiet']
    assert benchmark.main(common + ['--protocol', 'metasr', '--out', made]) == 0
    assert benchmark.main(common + ['--lr-dir', os.path.join(tiny, 'LR_bicubic', 'X{scale:.2f}'), '--out', read]) == 0
    assert _rows(made) == _rows(read)


def test_decoded_images_as_a_dataset_and_each_sr_image_to_a_callback(tiny):
    """A dataset of already-decoded images gives what its folder gives; on_image receives every SR image."""
    hr_dir = os.path.join(tiny, 'HR')
    paths = sorted(os.path.join(hr_dir, n) for n in os.listdir(hr_dir))
    models = [('bicubic', benchmark.Bicubic())]
    from_files, from_memory, seen = [], [], []
    rows = benchmark.evaluate(models, [('Tiny', hr_dir, tiny)], [2.5], per_image=from_files, progress=False)
    decoded = [(os.path.basename(p), *read_image(p, as_float=True)) for p in paths]
    again = benchmark.evaluate(models, [('Tiny', decoded, None)], [2.5], per_image=from_memory, progress=False,
                               on_image=lambda row, sr, grey: seen.append((row['image'], sr.shape, grey)))
    assert again == rows and from_memory == from_files
    shapes = [make_pair(img, 2.5)[1].shape for _, img, _, _ in decoded]
    assert seen == [('a.png', shapes[0], False), ('b.png', shapes[1], False)]
    with pytest.raises(ValueError, match='decoded images'):
        benchmark.evaluate(models, [('Tiny', decoded, None)], [2.5], lr_dirs={(0, 2.5): hr_dir}, progress=False)


def test_bad_arguments(tiny, tmp_path, capsys):
    out = str(tmp_path / 'out')
    assert benchmark.main(['--data', tiny, '--scales', 'x2', '--out', out]) == 2
    assert "bad scale 'x2'" in capsys.readouterr().err
    assert benchmark.main(['--data', tiny, '--scales', '2', '--lr-dir', str(tmp_path / 'nope'), '--out', out]) == 2
    assert 'LR folder not found' in capsys.readouterr().err
    assert benchmark.main(['--data', str(tmp_path / 'missing'), '--scales', '2', '--out', out]) == 2
    assert not os.path.exists(out)


# ---------------------------------------------------------------- trained models, paper layout, jobs

from helpers import one_thread_fixture, save_tiny_model  # noqa: E402
from nodesr_arch.commands import benchmark_report  # noqa: E402

one_thread = one_thread_fixture()


def _table(md, dataset):
    """Header and body rows (as cell lists) of the first table under ``## dataset``."""
    lines = md.split(f'## {dataset}\n', 1)[1].strip().splitlines()
    table = []
    for line in lines:
        if not line.startswith('|'):
            break
        table.append([c.strip() for c in line.strip('|').split('|')])
    return table[0], table[2:]


def test_trained_models_paper_layout_and_plot(tiny, tmp_path):
    from nodesr_arch.api import load_model
    node = save_tiny_model(str(tmp_path / 'm'), 'NODEVDSR', name='node')
    vdsrt = save_tiny_model(str(tmp_path / 'm'), 'VDSRt', name='vdsrt', seed=1)
    out = str(tmp_path / 'out')
    argv = ['--model', 'bicubic', node, 'T=' + vdsrt, '--data', tiny, '--scales', '2', '6', '--out', out,
            '--quiet', '--per-image']
    assert benchmark.main(argv) == 0
    rows = _rows(out)
    assert [(r['scale'], r['model']) for r in rows] == [(s, m) for s in ('2', '6') for m in ('bicubic', 'node', 'T')]
    # x6 (beyond the training range) through the shared I(s) equals the Python API given the LR itself
    up, scores = load_model(node), []
    for name in ('a', 'b'):
        hr, grey, _ = read_image(os.path.join(tiny, 'HR', name + '.png'), as_float=True)
        lr, gt, out_size = make_pair(hr, 6, 'metasr')
        scores.append(tuple(image_metrics(up.super_resolve(lr, 6, out_size), gt, 6, grey).values()))
    assert float(rows[4]['psnr']) == pytest.approx(np.mean(scores, axis=0)[0], abs=2e-3)
    # paper layout: scales as columns, methods as rows, the best PSNR of each column in bold
    header, body = _table(open(os.path.join(out, 'results.md')).read(), 'Tiny')
    assert header == ['method', 'x2', 'x6'] and [r[0] for r in body] == ['bicubic', 'node', 'T']
    for col, s in ((1, '2'), (2, '6')):
        figures = {r['model']: (float(r['psnr']), float(r['ssim'])) for r in rows if r['scale'] == s}
        best = max(figures, key=figures.get)
        for cells in body:
            psnr, ssim = figures[cells[0]]
            assert cells[col].startswith('**') == (cells[0] == best)
            assert cells[col].replace('*', '') == f'{psnr:.2f} / {ssim:.4f}'
    png = os.path.join(out, 'psnr_vs_scale.png')
    img = cv2.imread(png)
    assert img is not None and img.shape[0] > 100 and img.shape[1] > 100


def test_markdown_bold_ties_chunks_cells_and_gain():
    rows = [dict(dataset='D', scale=s, model=m, psnr=p, ssim=0.5) for s, m, p in [
        (2, 'bicubic', 30.0), (2, 'a', 31.004), (2, 'b', 30.996), (3, 'bicubic', 27.0), (3, 'a', 26.5),
        (4, 'bicubic', 25.0), (4, 'b', 26.0)]]
    lines = benchmark_report.paper_table(rows, 'D', cell='psnr', max_columns=2)
    assert lines == ['| method | x2 | x3 |', '|---|---|---|', '| bicubic | 30.00 | **27.00** |',
                     '| a | **31.00** | 26.50 |', '| b | **31.00** |  |', '',
                     '| method | x4 |', '|---|---|', '| bicubic | 25.00 |', '| a |  |', '| b | **26.00** |']
    gain = benchmark_report.gain_table(rows, 'D')
    assert gain[2:] == ['| a | +1.00 | -0.50 |  |', '| b | +1.00 |  | +1.00 |']
    md = benchmark_report.markdown(rows, protocol='metasr')
    assert '**31.00** / 0.5000' in md and 'PSNR gain over bicubic' in md


def test_jobs_merge_and_resume(tiny, tmp_path):
    one, two = str(tmp_path / 'one'), str(tmp_path / 'two')
    common = ['--data', tiny, '--quiet', '--per-image']
    assert benchmark.main(common + ['--scales', '1.5', '2', '3', '4', '--out', one]) == 0
    assert benchmark.main(common + ['--scales', '1.5', '2', '3', '4', '--out', two, '--jobs', '2']) == 0
    key = lambda r: (r['scale'], r['model'])  # noqa: E731
    assert sorted(_rows(one), key=key) == sorted(_rows(two), key=key)
    assert len(open(os.path.join(two, 'per_image.csv')).read().splitlines()) == 1 + 2 * 4
    # merge runs made by hand; conflicting figures are an error that writes nothing
    a, b, merged = str(tmp_path / 'a'), str(tmp_path / 'b'), str(tmp_path / 'merged')
    assert benchmark.main(common + ['--scales', '3', '4', '--out', a]) == 0
    assert benchmark.main(common + ['--scales', '2', '1.5', '--out', b]) == 0
    assert benchmark.main(['--merge', a, b, '--out', merged]) == 0
    assert _rows(merged) == _rows(one)
    assert 'protocol `metasr`' in open(os.path.join(merged, 'results.md')).read()
    text = open(os.path.join(a, 'results.csv')).read().replace('Tiny,3,bicubic,', 'Tiny,3,bicubic,1')
    open(os.path.join(a, 'results.csv'), 'w').write(text)
    assert benchmark.main(['--merge', a, one, '--out', str(tmp_path / 'bad')]) == 2
    assert not os.path.exists(str(tmp_path / 'bad'))
    # --resume keeps finished (dataset, scale) groups (the edited figure) and computes the rest
    assert benchmark.main(common + ['--scales', '3', '4', '2', '--out', a, '--resume']) == 0
    rows = {r['scale']: r['psnr'] for r in _rows(a)}
    assert rows['3'].startswith('1') and rows['2'] == {r['scale']: r['psnr'] for r in _rows(one)}['2']


def test_split_scales_balances_the_ode_work():
    scales = [1.5, 2, 2.5, 3, 3.5, 4, 6, 8]
    parts = benchmark.split_scales(scales, 2)
    assert sorted(s for p in parts for s in p) == sorted(scales)
    work = [sum(1 + np.ceil(s - 1) for s in p) for p in parts]
    assert abs(work[0] - work[1]) <= 2  # greedy (longest first): 17 vs 15 here, all on one job would be 32 vs 0
    assert benchmark.split_scales([2], 3) == [[2]]


def test_solver_settings_one_row_each(tiny, tmp_path):
    from nodesr_arch.commands.solver_settings import parse_setting
    node = save_tiny_model(str(tmp_path / 'm'), 'NODEVDSR', name='node')
    out = str(tmp_path / 'out')
    argv = ['--model', 'bicubic', node, '--solver', 'trained', 'rk4:1', 'euler:2', '--data', tiny, '--scales', '2',
            '3', '--out', out, '--quiet']
    assert benchmark.main(argv) == 0
    psnr = {(r['model'], r['scale']): r['psnr'] for r in _rows(out)}
    names = ['bicubic', 'node [trained (rk4, step_size 1)]', 'node [rk4, 1 step]', 'node [euler, 2 steps]']
    assert list(dict.fromkeys(m for m, _ in psnr)) == names
    # step_size 1 at x2 is one rk4 step; at x3 it is two, so one fixed step differs
    assert psnr[names[1], '2'] == psnr[names[2], '2'] and psnr[names[1], '3'] != psnr[names[2], '3']
    assert psnr[names[3], '2'] != psnr[names[2], '2']
    assert parse_setting('dopri5:1e-5:1e-6', {})[1] == {'method': 'dopri5', 'rtol': 1e-5, 'atol': 1e-6}
    assert parse_setting('rk4:h0.5', {}) == ('rk4, step_size 0.5', {'method': 'rk4', 'step_size': 0.5})
    for bad in ('rk4:0', 'rk4', 'dopri5:1e-3', 'nope:2', 'rk4:h0', 'rk4:hx'):
        with pytest.raises(ValueError, match='bad solver setting'):
            parse_setting(bad, {})


def test_fixed_scale_model_rows_are_labelled_and_warned(tiny, tmp_path, capsys):
    """An x2 EDSR at x2.5 and x3 is its x2 output resized with bicubic: named so everywhere, and warned."""
    from helpers import TINY_EDSR_X2, save_basicsr_model
    from nodesr_arch.api import load_model
    from nodesr_arch.inference import FixedScaleWarning
    edsr = save_basicsr_model(str(tmp_path / 'm'), TINY_EDSR_X2, 'EDSR')
    out = str(tmp_path / 'out')
    argv = ['--model', 'bicubic', 'EDSR=' + edsr, '--data', tiny, '--scales', '2', '2.5', '3', '--out', out,
            '--quiet', '--per-image']
    assert benchmark.main(argv) == 0
    err = capsys.readouterr().err
    assert 'nodesr benchmark: warning: EDSR is a fixed-scale x2 network: at x2.5, x3 its x2 output is resized' in err
    label = 'EDSR x2 + bicubic'
    rows = _rows(out)
    expected = [('2', 'bicubic'), ('2', 'EDSR'), ('2.5', 'bicubic'), ('2.5', label), ('3', 'bicubic'), ('3', label)]
    assert [(r['scale'], r['model']) for r in rows] == expected
    per_image = list(csv.DictReader(open(os.path.join(out, 'per_image.csv'))))
    assert {r['model'] for r in per_image if r['scale'] != '2'} == {'bicubic', label}
    md = open(os.path.join(out, 'results.md')).read()
    assert benchmark_report.FIXED_SCALE_NOTE in md
    header, body = _table(md, 'Tiny')
    assert header == ['method', 'x2', 'x2.5', 'x3'] and [r[0] for r in body] == ['bicubic', 'EDSR', label]
    assert body[1][2:] == ['', ''] and body[2][1] == ''
    # the labelled figure is what the API gives, warning, for the protocol's LR at x2.5
    up, scores = load_model(edsr), []
    for name in ('a', 'b'):
        hr, grey, _ = read_image(os.path.join(tiny, 'HR', name + '.png'), as_float=True)
        lr, gt, out_size = make_pair(hr, 2.5, 'metasr')
        with pytest.warns(FixedScaleWarning):
            scores.append(tuple(image_metrics(up.super_resolve(lr, 2.5, out_size), gt, 2.5, grey).values()))
    assert float(rows[3]['psnr']) == pytest.approx(np.mean(scores, axis=0)[0], abs=2e-3)
    # --resume finds the labelled rows: it keeps them (an edited figure survives) and computes nothing again
    text = open(os.path.join(out, 'results.csv')).read().replace(f'Tiny,3,{label},', f'Tiny,3,{label},1')
    open(os.path.join(out, 'results.csv'), 'w').write(text)
    assert benchmark.main(argv + ['--resume']) == 0
    again = _rows(out)
    assert [(r['scale'], r['model']) for r in again] == [(r['scale'], r['model']) for r in rows]
    assert again[5]['psnr'].startswith('1') and again[3] == rows[3]


def two_models_three_seeds():
    """Result rows of models A and B, seeds 0-2 (``A0`` ...): at x2 A ahead by 0.5 with sd 0.1 each (beyond the
    spread), at x3 by 0.05 (inside it)."""
    rows = []
    for seed, (a2, b2, a3, b3) in enumerate([(30.6, 30.1, 28.05, 28.0), (30.5, 30.0, 28.15, 28.1),
                                             (30.4, 29.9, 27.95, 27.9)]):
        for scale, a, b in ((2.0, a2, b2), (3.0, a3, b3)):
            rows += [{'dataset': 'S', 'scale': scale, 'model': f'A{seed}', 'psnr': a},
                     {'dataset': 'S', 'scale': scale, 'model': f'B{seed}', 'psnr': b}]
    return rows


def write_results(path, rows):
    """``rows`` as a ``nodesr benchmark`` results.csv (SSIM 0.9 throughout)."""
    with open(path, 'w') as f:
        f.write('dataset,scale,model,psnr,ssim\n' + ''.join(
            f"{r['dataset']},{r['scale']},{r['model']},{r['psnr']},0.9\n" for r in rows))


def test_seed_tables_mean_spread_and_verdict(tmp_path, capsys):
    from scripts.seed_tables import main, seed_stats
    rows = two_models_three_seeds()
    stats = seed_stats(rows, 'S', ['A0', 'A1', 'A2'], ['B0', 'B1', 'B2'])
    assert [st['verdict'] for st in stats] == ['A', '~']
    assert stats[0]['diff'] == pytest.approx(0.5) and stats[0]['sd_a'] == pytest.approx(0.1)
    assert stats[1]['pair_min'] == pytest.approx(0.05) and stats[1]['pair_max'] == pytest.approx(0.05)
    path = tmp_path / 'results.csv'
    write_results(path, rows)
    main([str(path), '--a', 'A0', 'A1', 'A2', '--b', 'B0', 'B1', 'B2', '--labels', 'NODE', 'VDSRt',
          '--csv-out', str(tmp_path / 'stats.csv')])
    out = capsys.readouterr().out
    assert '| x2 | 30.50 +- 0.100 | 30.00 +- 0.100 | +0.500 |' in out and 'NODE ahead' in out
    assert 'NODE ahead beyond the spread at 1 of 2 scales (x2)' in out
    assert (tmp_path / 'stats.csv').read_text().splitlines()[1].startswith('S,2,30.5000,0.1000,30.0000')
    main([str(path), '--a', 'A0', 'A1', 'A2', '--b', 'B0', 'B1', 'B2', '--labels', 'NODE', 'VDSRt',
          '--compact', '2', '3'])
    out = capsys.readouterr().out
    assert '| NODE | 30.50 +- 0.10 | 28.05 +- 0.10 |' in out and '| difference | **+0.50** | +0.05 |' in out
    main([str(path), '--a', 'A0', 'A1', 'A2', '--b', 'B0', 'B1', 'B2', '--compact-diff', '3', '2'])
    assert '| S | +0.05 | **+0.50** |' in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([str(path), '--a', 'A0', 'A1', 'A2', '--b', 'B0', 'B1', 'B2', '--compact', '4'])
    assert 'no results at scale(s) x4' in capsys.readouterr().err


def test_seed_tables_scale_ranges():
    from scripts.seed_tables import scale_ranges
    assert scale_ranges([1.8, 1.9, 2.0, 3.2, 3.3, 6, 8]) == 'x1.8 to x2.0, x3.2 to x3.3, x6, x8'
    assert scale_ranges([2.0, 3.0]) == 'x2, x3' and scale_ranges([1.5]) == 'x1.5' and scale_ranges([]) == 'none'


def test_val_curves_reads_basicsr_logs(tmp_path, capsys):
    from scripts.val_curves import main, read_log
    log = tmp_path / 'train.log'
    log.write_text(
        "2026 INFO: [NODEV..][epoch:  0, iter:     250, lr:(5.000e-04,)] [eta: 0:01:00] l_pix: 2.0e-02\n"
        "2026 INFO: Validation Set5_x1.1\n\t # psnr: 41.5173\tBest: 41.5173 @ 250 iter\n\n"
        "2026 INFO: Validation Set5_x2\n\t # psnr: 33.6900\tBest: 33.6900 @ 250 iter\n"
        "2026 INFO: [NODEV..][epoch:  0, iter:   1,000, lr:(5.000e-04,)] [eta: 0:00:10] l_pix: 1.0e-02\n"
        "2026 INFO: Validation Set5_x1.1\n\t # psnr: 41.8200\tBest: 41.8200 @ 1000 iter\n")
    assert read_log([str(log)]) == {('Set5_x1.1', 250): 41.5173, ('Set5_x2', 250): 33.69,
                                    ('Set5_x1.1', 1000): 41.82}
    main([f'A={log}', f'B={log}', '--datasets', 'Set5_x1.1', '--vs', 'A', 'B', '--csv', str(tmp_path / 'c.csv')])
    assert '| 1000 | 41.82 | 41.82 | +0.00 |' in capsys.readouterr().out
    assert (tmp_path / 'c.csv').read_text().splitlines()[1] == 'A,Set5_x1.1,250,41.5173'


def test_scale_sampling_expected_evaluations():
    from benchmarks.scale_sampling import expected_evaluations
    from nodesr_arch.data.scale_space import scale_grid
    grid = scale_grid([1.1, 4.0], 0.1)  # 10 scales each of 1, 2 and 3 rk4 steps
    assert expected_evaluations('one step', grid, 12) == 4
    assert expected_evaluations('per batch', grid, 12) == pytest.approx(8)
    # the largest of 12 draws: 3 steps unless all 12 fall in the lower two thirds
    p2, p1 = (2 / 3)**12, (1 / 3)**12
    assert expected_evaluations('per sample', grid, 12) == pytest.approx(4 * (3 * (1 - p2) + 2 * (p2 - p1) + p1))
    assert expected_evaluations('per sample', grid, 1) == pytest.approx(8)


def test_method_tables_leaders_table_cost_and_plot(tmp_path, capsys):
    from scripts.method_tables import leader, main, method_stats
    rows = two_models_three_seeds()  # A leads B beyond the spread at x2, inside it at x3
    # bicubic, one run, far behind
    rows += [{'dataset': 'S', 'scale': s, 'model': 'bicubic', 'psnr': 25.0} for s in (2.0, 3.0)]
    methods = {'bicubic': ['bicubic'], 'A': ['A0', 'A1', 'A2'], 'B': ['B0', 'B1', 'B2']}
    stats = method_stats(rows, 'S', methods)
    assert stats[0]['methods']['A']['mean'] == pytest.approx(30.5) and stats[0]['methods']['bicubic']['sd'] == 0
    assert [leader(st['methods'])[::3] for st in stats] == [('A', True), ('A', False)]
    path, cost = tmp_path / 'results.csv', tmp_path / 'cost.csv'
    write_results(path, rows)
    cost.write_text('model,scale,params,macs_per_px,ms,out\nA,2,57539,229248,81.5,256x256\n'
                    'A,4,57539,229248,90.1,256x256\nB,2,57312,57312,20.2,256x256\nB,4,57312,57312,21,256x256\n')
    main([str(path), '--method', 'bicubic', 'A=A0,A1,A2', 'B=B0,B1,B2', '--compact', '2', '3', '--vs', 'A',
          '--cost', str(cost), '--csv-out', str(tmp_path / 'm.csv'), '--plot', str(tmp_path / 'm.png')])
    out = capsys.readouterr().out
    assert '| A | **30.50 +- 0.10** | 28.05 +- 0.10 |' in out and '| bicubic | 25.00 | 25.00 |' in out
    assert 'beyond the spread: A at 1 (x2); no method beyond it at 1 (x3).' in out
    assert 'A against B: A ahead beyond the spread at 1 of 2 scales (x2); B ahead beyond it at 0 (none); within ' \
        'it at 1 (x3).' in out
    assert 'A against bicubic: A ahead beyond the spread at 2 of 2 scales (x2, x3)' in out
    assert '| A | 57,539 | 229,248 | 82 | 229,248 | 90 |' in out
    lines = (tmp_path / 'm.csv').read_text().splitlines()
    assert lines[1:3] == ['S,2,bicubic,1,25.0000,0.0000', 'S,2,A,3,30.5000,0.1000']
    assert (tmp_path / 'm.png').stat().st_size > 1000
    for bad, message in ((['--method', 'A=A0'], 'at least two'), (['--method', 'A=A0', 'B=X'], "['X']"),
                         (['--method', 'A=A0', 'B=B0', '--vs', 'C'], '--vs C')):
        with pytest.raises(SystemExit):
            main([str(path)] + bad)
        assert message in capsys.readouterr().err
