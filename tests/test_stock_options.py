"""BasicSR 1.4.2's own option files (``../shared/basicsr-options``, skipped when absent): the option check
never crashes and rejects only what BasicSR cannot run either; stock SwinIR, ECBSR, EDSR, RCAN and RRDBNet
files train a few iterations through ``nodesr train`` and ``python -m basicsr.train``."""
import glob
import os
import re
import shutil
import sys
import uuid

import pytest
import yaml

import nodesr_arch  # noqa: F401,I001  (compat fixes, registries)
from basicsr.utils.options import ordered_yaml
from helpers import write_images
from nodesr_arch.models.option_check import OptionError, check_options
from test_entry_points import run, stock_root

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STOCK = os.path.join(ROOT, '..', 'shared', 'basicsr-options', 'options')
pytestmark = pytest.mark.skipif(not os.path.isdir(STOCK), reason='../shared/basicsr-options is not here')

# what BasicSR 1.4.2 cannot run either, with the reason the check must give
EXPECTED_REJECTIONS = [
    (r'(BasicVSR|BasicVSRPP|VideoRecurrentGAN)/', r'network_g: BasicSR cannot build \w+: FileNotFoundError: .*'
     r'experiments/pretrained_models/'),  # SPyNet / EDVR weights the architecture loads when built
    (r'train/EDVR/', r"network_g: EDVR: got an unexpected keyword argument 'ema_decay'"),
    (r'(RealESRGAN|LDL)/', r"model_type: unknown model 'RealESR(GAN|Net)Model' .*Real-ESRGAN"),
    (r'test/RCAN/test_RCAN\.yml', r'val: missing'),  # BasicSR's test_pipeline reads opt['val']['save_img']
]


def stock_files():
    return sorted(glob.glob(os.path.join(STOCK, '**', '*.yml'), recursive=True))


def load(path):
    with open(path) as f:
        return yaml.load(f, Loader=ordered_yaml()[0])


def rewrite_for_here(node, data, weights, meta):
    """Point every data path, meta-info file and pretrained network of ``node`` (in place) at files that
    exist here, and run on the CPU (``num_gpu: 0``). Paths inside ``network_g`` (SPyNet weights) stay."""
    if isinstance(node, dict):
        for key, value in list(node.items()):
            if key.startswith('dataroot') and value is not None:
                node[key] = data
            elif key in ('meta_info_file', 'meta_info') and value is not None:
                node[key] = meta
            elif (key.startswith('pretrain_network') or key == 'resume_state') and isinstance(value, str):
                node[key] = weights
            elif key == 'num_gpu':
                node[key] = 0
            else:
                rewrite_for_here(value, data, weights, meta)
    elif isinstance(node, list):
        for value in node:
            rewrite_for_here(value, data, weights, meta)


def test_check_never_crashes_and_rejects_only_what_basicsr_cannot_run(tmp_path, capsys):
    data, weights, meta = tmp_path / 'data', tmp_path / 'weights.pth', tmp_path / 'meta.txt'
    names = [os.path.basename(p) for p in write_images(str(data), [(32, 32)] * 32)]  # enough for any batch
    weights.write_bytes(b'')
    meta.write_text(''.join(f'{n} (32,32,3)\n' for n in names))
    tally, rejected = {'accepted': 0, 'rejected': 0, 'crashed': 0}, {}
    for path in stock_files():
        name = os.path.relpath(path, STOCK)
        opt = load(path)
        rewrite_for_here(opt, str(data), str(weights), str(meta))
        try:
            check_options(opt, is_train=name.startswith('train'))
            tally['accepted'] += 1
        except OptionError as e:
            tally['rejected'] += 1
            rejected[name] = str(e)
        except Exception as e:  # noqa: BLE001
            tally['crashed'] += 1
            rejected[name] = f'CRASH {type(e).__name__}: {e}'
    with capsys.disabled():
        print(f'\nstock option files: {len(stock_files())}, {tally}')
    assert len(stock_files()) == 70 and tally['crashed'] == 0
    for name, message in rejected.items():
        reasons = [reason for pattern, reason in EXPECTED_REJECTIONS if re.search(pattern, name)]
        assert reasons and re.match(reasons[0], message), f'{name}: {message}'
    assert tally == {'accepted': 48, 'rejected': 22, 'crashed': 0}


# ---- stock files train a few iterations through both doors ---------------------------------------------------

TRAINED = ['SwinIR/train_SwinIR_SRx2_scratch.yml', 'ECBSR/train_ECBSR_x2_m4c16_prelu.yml', 'EDSR/train_EDSR_Mx2.yml',
           'RCAN/train_RCAN_x2.yml', 'ESRGAN/train_RRDBNet_PSNR_x4.yml']


def write_paired_data(root, opt):
    """GT images and, per dataset, LR images named by its ``filename_tmpl``; returns the meta-info file."""
    import cv2
    scale = opt['scale']
    gt_dir = os.path.join(root, 'gt')
    gts = write_images(gt_dir, [(64, 64), (64, 64), (64, 72)])
    meta = os.path.join(root, 'meta_info.txt')
    with open(meta, 'w') as f:
        f.writelines(f'{os.path.basename(p)} (64,64,3)\n' for p in gts)
    for phase, d in opt['datasets'].items():
        lq_dir = os.path.join(root, f'lq_{phase}')
        os.makedirs(lq_dir)
        for p in gts:
            img = cv2.imread(p)
            lq = cv2.resize(img, (img.shape[1] // scale, img.shape[0] // scale), interpolation=cv2.INTER_AREA)
            stem = os.path.splitext(os.path.basename(p))[0]
            cv2.imwrite(os.path.join(lq_dir, d.get('filename_tmpl', '{}').format(stem) + '.png'), lq)
        d['dataroot_gt'], d['dataroot_lq'] = gt_dir, lq_dir
        if d.get('meta_info_file'):
            d['meta_info_file'] = meta
    return meta


def tiny_run(opt, name):
    """The stock options, cut to 2 iterations of batch 1 on small crops, on the CPU."""
    opt.update(name=name, num_gpu=0)
    train = opt['datasets']['train']
    train.update(gt_size=16 * opt['scale'], batch_size_per_gpu=1, num_worker_per_gpu=0, dataset_enlarge_ratio=1)
    opt['train']['total_iter'] = 2
    opt['val']['val_freq'] = 2
    opt['logger'].update(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False)
    opt['logger'].pop('wandb', None)
    return opt


@pytest.fixture
def unique_name():
    name = f'nodesr_stock_{uuid.uuid4().hex[:8]}'
    yield name
    for folder in ('experiments', 'tb_logger'):
        shutil.rmtree(os.path.join(stock_root(), folder, name), ignore_errors=True)


@pytest.mark.parametrize('door', ['nodesr train', 'python -m basicsr.train'])
@pytest.mark.parametrize('stock', TRAINED)
def test_stock_file_trains(stock, door, tmp_path, unique_name):
    opt = load(os.path.join(STOCK, 'train', stock))
    write_paired_data(str(tmp_path), opt)
    path = tmp_path / 'opt.yml'
    with open(path, 'w') as f:
        yaml.dump(tiny_run(opt, unique_name), f, Dumper=ordered_yaml()[1])
    module = 'nodesr_arch.commands.cli' if door == 'nodesr train' else 'basicsr.train'
    args = [sys.executable, '-m', module] + (['train'] if door == 'nodesr train' else []) + ['-opt', str(path)]
    out = run(str(tmp_path), args)
    assert 'End of training' in out, out[-3000:]
    root = str(tmp_path) if door == 'nodesr train' else stock_root()
    assert os.path.isfile(os.path.join(root, 'experiments', unique_name, 'models', 'net_g_2.pth'))
