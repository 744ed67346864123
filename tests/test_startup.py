"""A light command line (issue 11, item 6): ``nodesr infer -h``, its argument errors and its run import only what
they use, ``import nodesr_arch`` imports no BasicSR, and BasicSR users still get the plugin registered."""
import json
import os
import subprocess
import sys
import textwrap

HEAVY = ('torch', 'numpy', 'cv2', 'scipy', 'torchvision', 'basicsr', 'torchdiffeq')


def python(code, env=None):
    full_env = dict(os.environ)
    full_env.pop('NODESR_ARCH_HOOK', None)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True,
                          env=full_env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def loaded_by(argv):
    return python(f"""
        import json, sys
        from nodesr_arch.commands.cli import main
        try:
            main({argv!r})
        except SystemExit:
            pass
        print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
    """)


def test_help_and_argument_errors_import_nothing_heavy():
    assert loaded_by(['infer', '-h']) == []
    assert loaded_by(['infer', '-i', 'x.png', '-o', 'out', '--scale', 'big']) == []
    assert loaded_by(['-h']) == []


def test_infer_runs_without_basicsr_torchvision_or_scipy(tmp_path):
    import cv2
    import numpy as np
    cv2.imwrite(str(tmp_path / 'a.png'), np.zeros((12, 12, 3), np.uint8))
    got = loaded_by(['infer', '-i', str(tmp_path / 'a.png'), '-o', str(tmp_path / 'out'), '--scale', '2', '-q'])
    assert (tmp_path / 'out' / 'a_x2.png').is_file()
    assert got == ['cv2', 'numpy', 'torch', 'torchdiffeq']


def test_import_nodesr_arch_is_light_and_registers_when_basicsr_comes():
    for hook in ('1', '0'):
        got = python("""
            import json, sys
            import nodesr_arch
            light = sorted(m for m in ('torch', 'basicsr') if m in sys.modules)
            import basicsr
            from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY
            print(json.dumps([light, 'NODEVDSR' in ARCH_REGISTRY, 'ContinuousScalePairedDataset' in DATASET_REGISTRY,
                              'NODESRModel' in MODEL_REGISTRY, ARCH_REGISTRY.get('VDSRt').__module__]))
        """, env={'NODESR_ARCH_HOOK': hook})
        assert got == [[], True, True, True, 'nodesr_arch.archs.vdsr_arch'], hook


def test_scipy_solver_loads_scipy_when_used():
    got = python("""
        import json, sys
        import torch
        from nodesr_arch.archs.ode import ODEIntegrator
        before = 'scipy' in sys.modules
        from torchdiffeq import odeint
        y = odeint(lambda t, y: -y, torch.ones(1, dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64),
                   method='scipy_solver', rtol=1e-8, atol=1e-10, options={'solver': 'RK45'})
        print(json.dumps([before, 'scipy' in sys.modules, float(y[-1])]))
    """)
    assert got[:2] == [False, True] and abs(got[2] - 0.36787944) < 1e-6


def test_basicsr_matlab_weights_without_basicsr_are_basicsrs():
    code = """
        import json, sys
        {first}
        from nodesr_arch.basicsr_source import basicsr_module
        mod = basicsr_module('basicsr.utils.matlab_functions')
        w, i, s, e = mod.calculate_weights_indices(7, 17, 17 / 7, 'cubic', 4, True)
        print(json.dumps([mod.__name__, 'basicsr' in sys.modules, w.tolist(), i.tolist(), s, e]))
    """
    alone = python(code.format(first=''))
    real = python(code.format(first='import nodesr_arch, basicsr'))
    assert alone[:2] == ['nodesr_arch.basicsr_source.basicsr.utils.matlab_functions', False]
    assert real[:2] == ['basicsr.utils.matlab_functions', True]
    assert alone[2:] == real[2:]
