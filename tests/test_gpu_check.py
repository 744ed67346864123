"""scripts/gpu_check.sh --dry-run (its logic on the CPU, tiny sizes) and the report of benchmarks/gpu_check.py."""
import importlib.util
import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARTS = ['env', 'device_tests', 'train_1gpu', 'train_torchrun', 'train_speed', 'infer_speed', 'suite']


def load_gpu_check():
    spec = importlib.util.spec_from_file_location('gpu_check', os.path.join(ROOT, 'benchmarks', 'gpu_check.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dry_run_runs_every_part_and_records_a_failing_one(tmp_path):
    """One failing part (simulated) is recorded, the parts after it still run, the exit status says so."""
    out = tmp_path / 'out'
    env = dict(os.environ, TMPDIR=str(tmp_path), GPU_CHECK_FAIL_PART='infer_speed', OMP_NUM_THREADS='1')
    env['PYTHONPATH'] = ROOT + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
    proc = subprocess.run(['bash', os.path.join(ROOT, 'scripts', 'gpu_check.sh'), '--dry-run', '--out', str(out)],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=400)
    console = proc.stdout + proc.stderr
    assert proc.returncode == 1, console[-3000:]
    assert sorted(os.listdir(out)) == ['gpu_check.json', 'gpu_check.log', 'gpu_check.md', 'train_speed.json']
    report = json.loads((out / 'gpu_check.json').read_text())
    status = {p['part']: p['status'] for p in report['parts']}
    assert list(status) == PARTS
    assert status == {**{p: 'ok' for p in PARTS}, 'infer_speed': 'failed (simulated)'}, console[-3000:]
    assert report['mode'] == 'dry-run' and report['env']['basicsr'] == '1.4.2'
    assert report['tests']['device_tests']['passed'] >= 3 and report['tests']['device_tests']['failures'] == 0
    assert report['tests']['suite']['passed'] >= 1
    for name in ('train_1gpu', 'train_torchrun'):
        run = report['train_runs'][name]
        assert run['finished'] and run['world_size'] == 1 and run['validation_psnr'], name
    cases = report['train_speed']['cases']
    assert len(cases) == 12 and cases[0]['status'] == 'ok' and cases[0]['it_per_s'] > 0
    assert {c['status'] for c in cases} <= {'ok', 'skipped'}
    assert all(c['gpu_hours'] == round(600000 / c['it_per_s'] / 3600, 1) for c in cases if c['status'] == 'ok')
    md = (out / 'gpu_check.md').read_text()
    assert '## (c) Training speed' in md and '### infer_speed: failed (simulated)' in md
    assert '=== [suite] exit 0' in (out / 'gpu_check.log').read_text()


def test_report_from_parts_left_in_the_work_folder(tmp_path):
    """The report reads parts.tsv, JUnit XML, training logs and the speed JSON; a timeout shows its log."""
    gc = load_gpu_check()
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'parts.tsv').write_text('env\t0\t3.2\t60\ndevice_tests\t1\t20.5\t90\ntrain_1gpu\t0\t12.0\t90\n'
                                    'train_speed\t124\t160.0\t160\n')
    (work / 'env.json').write_text(json.dumps({'gpu': 'NVIDIA H100 80GB HBM3', 'gpu_memory_gib': 79.2,
                                               'capability': '9.0', 'python': '3.12.3', 'torch': '2.11.0'}))
    (work / 'device_tests.xml').write_text(
        '<testsuites><testsuite tests="3" failures="1" errors="0" skipped="1" time="4.5">'
        '<testcase classname="tests.test_device" name="test_a"/>'
        '<testcase classname="tests.test_device" name="test_b"><failure message="assert 1 == 2"/></testcase>'
        '<testcase classname="tests.test_device" name="test_c"><skipped message="CUDA only"/></testcase>'
        '</testsuite></testsuites>')
    (work / 'train_1gpu.log').write_text(
        'World size (gpu number): 1\nUse cuda prefetch dataloader\n[iter:       2, lr:(1.000e-03,)] '
        '[eta: 0:00:00, time (data): 0.120 (0.010)] l_pix: 1e-01\nValidation val_x2\n\t # psnr: 21.5000\tBest\n'
        'End of training. Time consumed: 0:00:05\n')
    (work / 'train_speed.log').write_text('case 1\ncase 2\nKeyboardInterrupt\n')
    (work / 'train_speed.json').write_text(json.dumps({'cases': [
        {'model': 'NODE-VDSR', 'precision': 'bf16', 'solver': 'step_size 1.0', 'checkpoint': False, 'status': 'ok',
         'batch': 16, 'patch': 200, 'iters': 30, 'it_per_s': 2.0, 'nfe_per_iter': 12.0, 'peak_alloc_gib': 30.5,
         'peak_reserved_gib': 31.0, 'gpu_hours': 83.3},
        {'model': 'NODE-RDN', 'precision': 'tf32', 'solver': 'step_size 1.0', 'checkpoint': False, 'status': 'oom',
         'error': 'OutOfMemoryError: CUDA out of memory.'}]}))
    report = gc.write_report(str(work), str(tmp_path / 'out'), 'gpu')
    assert [p['status'] for p in report['parts']] == ['ok', 'failed (exit 1)', 'ok', 'timeout']
    assert report['tests']['device_tests']['passed'] == 1
    assert report['tests']['device_tests']['failed'][0]['test'] == 'tests.test_device::test_b'
    run = report['train_runs']['train_1gpu']
    assert run == {'validation_psnr': [('val_x2', 21.5)], 'iter_time_s': [0.12], 'world_size': 1,
                   'nccl_version': None, 'cuda_prefetcher': True, 'finished': True}
    md = (tmp_path / 'out' / 'gpu_check.md').read_text()
    assert md.startswith('# GPU check: NVIDIA H100 80GB HBM3')
    row = '| NODE-VDSR | bf16 | step_size 1.0 | off | 16x200² | ok | 30 | 2.000 | 12.0 | 30.50 | 31.00 | - | 83.3 |'
    assert row in md
    assert '| NODE-RDN | tf32 | step_size 1.0 | off | -x-² | oom (OutOfMemoryError: CUDA out of memory.) |' in md
    assert 'FAILED tests.test_device::test_b: assert 1 == 2' in md
    assert '### train_speed: timeout' in md and 'KeyboardInterrupt' in md
