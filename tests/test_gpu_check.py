"""The GPU check on the CPU: the ``gpu`` tests are left out of the default run and skipped without CUDA, and
the speed script of ``scripts/gpu_check.sh`` (benchmarks/gpu_speed.py) writes its JSON in a dry run."""
import configparser
import json
import os
import re

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gpu_tests_are_deselected_by_default_and_skipped_without_cuda(monkeypatch, capsys):
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, 'setup.cfg'))
    assert 'not gpu' in cfg['tool:pytest']['addopts'] and 'gpu:' in cfg['tool:pytest']['markers']
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)  # no CUDA device, even on a GPU machine
    files = [os.path.join(ROOT, 'tests', name) for name in ('test_device.py', 'test_train.py')]
    assert pytest.main(['-m', 'gpu', '-q', '-rs', '-p', 'no:cacheprovider', *files]) == 0
    out = capsys.readouterr().out
    summary = out.strip().splitlines()[-1]
    skipped = int(re.search(r'(\d+) skipped', summary).group(1))
    assert skipped >= 20 and 'passed' not in summary and 'failed' not in summary, out[-3000:]
    assert 'gpu: no CUDA device here' in out


def test_speed_script_dry_run_writes_json(tmp_path):
    from benchmarks import gpu_speed
    for kind, budget in (('train', '3'), ('infer', '2')):
        path = tmp_path / f'{kind}_speed.json'
        assert gpu_speed.main([kind, '--dry-run', '--budget', budget, '--out', str(path)]) == 0
        report = json.loads(path.read_text())
        assert report['kind'] == kind and report['tiny'] and report['device']['device'] == 'cpu'
        assert report['device']['basicsr'] == '1.4.2'
        cases = report['cases']
        assert len(cases) == len(gpu_speed.train_cases() if kind == 'train' else gpu_speed.infer_cases(True))
        assert cases[0]['status'] == 'ok' and {c['status'] for c in cases} <= {'ok', 'skipped'}
    ok = [c for c in json.loads((tmp_path / 'train_speed.json').read_text())['cases'] if c['status'] == 'ok']
    assert all(c['gpu_hours'] == round(600000 / c['it_per_s'] / 3600, 1) for c in ok)
    table = gpu_speed.train_table({'cases': ok[:1] + [{**ok[0], 'status': 'oom', 'error': 'OutOfMemoryError: x'}]})
    assert table.count('\n') == 3 and '| oom (OutOfMemoryError: x) |' in table
