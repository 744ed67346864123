#!/usr/bin/env python
"""nodesr_arch: NODE-SR (Park & Kim, ICASSP 2022) as a BasicSR plugin."""
import os

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

here = os.path.dirname(os.path.abspath(__file__))
# Start-up file that runs nodesr_arch/hook.py (nodesr_arch.compat's fixes on BasicSR's import, so BasicSR's own
# entry points work): it goes to the root of site-packages, for wheel and editable installs alike, the one file
# of the project outside the package.
HOOK_PTH = 'nodesr_arch_hook.pth'


def get_version():
    scope = {}
    with open(os.path.join(here, 'nodesr_arch', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


class BuildPyWithHook(build_py):
    """``build_py`` that also puts the start-up ``.pth`` at the root of the wheel."""

    def run(self):
        super().run()
        self.copy_file(os.path.join(here, HOOK_PTH), os.path.join(self.build_lib, HOOK_PTH))

    def get_outputs(self, include_bytecode=True):
        return super().get_outputs(include_bytecode) + [os.path.join(self.build_lib, HOOK_PTH)]


def commands():
    """``build_py`` and ``editable_wheel`` (``pip install -e .``, setuptools >= 64) that install the ``.pth``."""
    cmdclass = {'build_py': BuildPyWithHook}
    try:
        from setuptools.command.editable_wheel import editable_wheel
    except ImportError:
        return cmdclass

    class EditableWheelWithHook(editable_wheel):

        def _install_namespaces(self, installation_dir, pth_prefix):  # its one step that writes the wheel's root
            super()._install_namespaces(installation_dir, pth_prefix)
            self.copy_file(os.path.join(here, HOOK_PTH), os.path.join(installation_dir, HOOK_PTH))

    cmdclass['editable_wheel'] = EditableWheelWithHook
    return cmdclass


setup(
    name='nodesr_arch',
    version=get_version(),
    description='NODE-SR: progressive super-resolution as a neural ODE, at any real scale, for BasicSR',
    long_description=open(os.path.join(here, 'README.md'), encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.9, <3.14',  # tested: 3.9 to 3.13 (README, Install)
    packages=find_packages(include=['nodesr_arch', 'nodesr_arch.*']),
    cmdclass=commands(),
    package_data={'nodesr_arch': ['weights/*.pth', 'weights/*.yml', 'weights/*.md']},
    include_package_data=True,
    # BasicSR is an extra, not a requirement: PyPI's basicsr and basicsr-fixed (its maintained fork) install the
    # same `basicsr` package under two distribution names, and pip matches requirements by name, so a hard
    # `basicsr` requirement reinstalls PyPI's 1.4.2 over basicsr-fixed (docs/basicsr.md, Installing beside a
    # BasicSR you have)
    install_requires=[
        'torch>=2.0',
        'torchvision>=0.15',
        # archs/solvers.py reads torchdiffeq's private solver table (_impl.odeint.SOLVERS, _impl.solvers,
        # _impl.scipy_wrapper): pinned to the releases tested (tests/test_ode.py with 0.2.3, 0.2.4 and 0.2.5)
        'torchdiffeq>=0.2.3,<=0.2.5',
        'opencv-python',
        'numpy',
        'lmdb',
        'tensorboard',
        'pyyaml',
        'tqdm',
        'scikit-image',
        'matplotlib',
        'Pillow',
        'setuptools>=60',  # BasicSR imports distutils, gone from Python >= 3.12 (nodesr_arch.compat fix 2)
    ],
    extras_require={
        'basicsr': ['basicsr==1.4.2'],  # pip install "nodesr_arch[basicsr]": PyPI's BasicSR, what the fixes are for
        'basicsr-fixed': ['basicsr-fixed==1.4.2'],  # or the fork, code identical to BasicSR's master
        'test': ['pytest>=7', 'pytest-timeout'],
        'lint': ['flake8', 'isort>=5'],  # the house rules of setup.cfg, as BasicSR's
        # nodesr export: torch.onnx.export(dynamo=True) needs onnx and onnxscript; onnxruntime checks the graph
        'onnx': ['onnx', 'onnxscript', 'onnxruntime'],
        # nodesr_arch.spandrel: the models load in spandrel hosts (ComfyUI, chaiNNer)
        'spandrel': ['spandrel>=0.4'],
    },
    entry_points={'console_scripts': ['nodesr=nodesr_arch.commands.cli:main']},
    classifiers=[
        'Programming Language :: Python :: 3',
        'Programming Language :: Python :: 3.9',
        'Programming Language :: Python :: 3.10',
        'Programming Language :: Python :: 3.11',
        'Programming Language :: Python :: 3.12',
        'Programming Language :: Python :: 3.13',
        'Topic :: Scientific/Engineering :: Image Processing',
    ],
)
