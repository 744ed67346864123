#!/usr/bin/env python
"""nodesr_arch: NODE-SR (Park & Kim, ICASSP 2022) as a BasicSR plugin."""
import os

from setuptools import find_packages, setup

here = os.path.dirname(os.path.abspath(__file__))


def get_version():
    scope = {}
    with open(os.path.join(here, 'nodesr_arch', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='nodesr_arch',
    version=get_version(),
    description='NODE-SR: progressive super-resolution as a neural ODE, at any real scale, for BasicSR',
    long_description=open(os.path.join(here, 'README.md'), encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.9',
    packages=find_packages(include=['nodesr_arch', 'nodesr_arch.*']),
    package_data={'nodesr_arch': ['weights/*.pth', 'weights/*.yml', 'weights/*.md']},
    include_package_data=True,
    install_requires=[
        'basicsr==1.4.2',
        'torch>=2.0',
        'torchvision>=0.15',
        'torchdiffeq>=0.2.3',
        'opencv-python',
        'numpy',
        'lmdb',
        'tensorboard',
        'pyyaml',
        'tqdm',
        'scikit-image',
        'matplotlib',
        'Pillow',
        'setuptools',  # BasicSR imports distutils, gone from Python >= 3.12 (compat fix 2)
    ],
    extras_require={'test': ['pytest>=7', 'pytest-timeout']},
    entry_points={'console_scripts': ['nodesr=nodesr_arch.cli:main']},
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Image Processing',
    ],
)
