"""Every option YAML in options/ parses, passes the start-up checks and builds (so none rots); wrong
options stop the commands before anything is written."""
import glob
import os

import pytest
import yaml

import nodesr_arch  # noqa: F401  (compat fixes, registries)
from basicsr.data import build_dataset
from basicsr.models import build_model
from basicsr.utils.options import ordered_yaml
from benchmarks.common import tiny_train_options
from helpers import one_thread_fixture, write_images
from nodesr_arch.commands import test as nodesr_test
from nodesr_arch.commands import train as nodesr_train
from nodesr_arch.data.continuous_scale_dataset import ContinuousScalePairedDataset
from nodesr_arch.models.option_check import check_options
from test_train import write_data, write_yml

one_thread = one_thread_fixture()
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
YAMLS = sorted(glob.glob(os.path.join(REPO, 'options', '**', '*.yml'), recursive=True))


def load(path):
    with open(path) as f:
        return yaml.load(f, Loader=ordered_yaml()[0])


def test_there_are_option_files():
    names = {os.path.basename(p) for p in YAMLS}
    for model in ('NODEVDSR', 'NODERDN', 'VDSRt', 'RDNt'):
        assert f'train_{model}_DIV2K.yml' in names
        assert f'test_{model}_DIV2K_x2x3x4.yml' in names
        assert f'test_{model}_DIV2K_x1.1-4.0.yml' in names
    assert {'train_NODEVDSR_S_cpu.yml', 'train_VDSRt_S_cpu.yml'} <= names


@pytest.mark.parametrize('path', YAMLS, ids=lambda p: os.path.relpath(p, REPO))
def test_option_file_builds(path, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # data paths are relative to the repository root
    opt = load(path)
    is_train = os.sep + 'train' + os.sep in path
    check_options(opt, is_train=is_train, check_paths=False)
    assert 'scale' not in opt or opt['datasets'].get('train', {}).get('type') != 'ContinuousScalePairedDataset', \
        'a top-level scale would be copied into every dataset'
    # what BasicSR's parse_options adds, on the CPU, without the weights the test configs point to
    opt.update(dist=False, rank=0, world_size=1, is_train=is_train, num_gpu=0, auto_resume=False)
    opt['path'] = {'pretrain_network_g': None, 'strict_load_g': True, 'models': str(tmp_path),
                   'training_states': str(tmp_path), 'visualization': str(tmp_path),
                   'results_root': str(tmp_path), 'experiments_root': str(tmp_path)}
    for phase, d in opt['datasets'].items():
        d['phase'] = phase.split('_')[0]
        if 'scale' in opt:
            d['scale'] = opt['scale']
        roots = d['dataroot_gt'] if isinstance(d['dataroot_gt'], list) else [d['dataroot_gt']]
        if all(os.path.isdir(r) for r in roots):  # datasets/ is empty on a fresh checkout
            assert len(build_dataset(dict(d))) > 0
    model = build_model(opt)
    assert sum(p.numel() for p in model.net_g.parameters()) > 0
    if is_train:
        assert model.optimizers and model.schedulers


def write_train_yml(tmp_path, **changes):
    """A valid tiny training YAML in ``tmp_path`` (data made there); ``changes`` edit it by 'a:b' keys."""
    write_images(str(tmp_path / 'hr'), [(40, 40), (40, 44)])
    opt = load(os.path.join(REPO, 'options', 'train', 'train_NODEVDSR_S_cpu.yml'))
    for phase in list(opt['datasets']):
        if phase != 'train':
            del opt['datasets'][phase]
    opt['datasets']['val_1'] = {'name': 'v', 'type': 'ContinuousScalePairedDataset', 'dataroot_gt': 'hr',
                                'io_backend': {'type': 'disk'}, 'scale': 2.0}
    opt['datasets']['train']['dataroot_gt'] = 'hr'
    for key, value in changes.items():
        node = opt
        *parents, last = key.split(':')
        for k in parents:
            node = node[k]
        node[last] = value
    path = tmp_path / 'opt.yml'
    with open(path, 'w') as f:
        yaml.dump(yaml.safe_load(yaml.dump(dict(opt), Dumper=ordered_yaml()[1])), f)
    return str(path)


@pytest.mark.parametrize('changes, key', [
    ({'network_g:type': 'NoSuchNet'}, 'network_g:type'),
    ({'network_g:num_layers': 3}, 'network_g'),
    ({'datasets:train:dataroot_gt': 'missing_folder'}, 'datasets:train:dataroot_gt'),
    ({'datasets:val_1:scale': 0.5}, 'datasets:val_1:scale'),
    ({'datasets:val_1:scale': 'x2'}, 'datasets:val_1:scale'),
    ({'datasets:train:scale_range': [0.9, 4.0]}, 'datasets:train:scale_range'),
    ({'datasets:train:type': 'NoSuchDataset'}, 'datasets:train:type'),
    ({'model_type': 'NoSuchModel'}, 'model_type'),
    ({'train:max_nonfinite': 0}, 'train:max_nonfinite'),
    ({'train:exact_resume': 'yes'}, 'train:exact_resume'),
    ({'val:tile': -4}, 'val:tile'),
    ({'model_type': 'SRModel'}, 'network_g:type'),  # NODEVDSR needs the scale SRModel does not feed
    ({'model_type': 'SRModel', 'network_g': {'type': 'VDSR', 'num_feat': 4, 'num_layer': 3}}, 'datasets:train:type'),
    ({'scale': 4}, 'scale'),  # BasicSR would copy it over val_1's x2 and the training scale range
    # what BasicSR's train_pipeline reads only after making the experiment folder
    ({'logger': {'print_freq': 1, 'save_checkpoint_freq': 1}}, 'logger:use_tb_logger: missing'),
    ({'datasets:test_1': {'name': 't', 'type': 'ContinuousScalePairedDataset', 'dataroot_gt': 'hr', 'scale': 2.0}},
     "datasets:test_1: phase 'test_1' must be train or val*"),
])
def test_wrong_option_stops_before_writing(tmp_path, monkeypatch, capsys, changes, key):
    path = write_train_yml(tmp_path, **changes)
    monkeypatch.chdir(tmp_path)
    assert nodesr_train.main(['-opt', path]) == 2
    err = capsys.readouterr().err
    assert f'error: {key}' in err, err
    assert not (tmp_path / 'experiments').exists() and not (tmp_path / 'tb_logger').exists()


def test_valid_yaml_passes_and_force_yml_is_checked(tmp_path, monkeypatch, capsys):
    path = write_train_yml(tmp_path)
    monkeypatch.chdir(tmp_path)
    from nodesr_arch.models.option_check import read_options
    assert read_options(['-opt', path])['name'] == 'NODEVDSR_S_cpu'
    assert read_options(['-opt', path, '--debug'])['name'] == 'debug_NODEVDSR_S_cpu'
    assert nodesr_train.main(['-opt', path, '--force_yml', 'datasets:val_1:scale=0.9']) == 2
    assert 'datasets:val_1:scale' in capsys.readouterr().err


def test_test_command_checks_options(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert nodesr_test.main(['-opt', 'nothing.yml']) == 2
    assert "-opt: option file 'nothing.yml' does not exist" in capsys.readouterr().err
    path = write_train_yml(tmp_path, **{'path:pretrain_network_g': 'no/such.pth'})
    assert nodesr_test.main(['-opt', path]) == 2
    assert 'path:pretrain_network_g' in capsys.readouterr().err
    assert not (tmp_path / 'results').exists()


def test_scale_rules_name_the_sets_and_the_model(tmp_path, monkeypatch):
    from nodesr_arch.models.option_check import OptionError
    monkeypatch.chdir(tmp_path)
    opt = load(write_train_yml(tmp_path, scale=2.0))
    with pytest.raises(OptionError, match=r'would override datasets:train \(scale_range \[1\.1, 4\.0\]\);'):
        check_options(opt)
    del opt['datasets']['train']['scale_range']
    opt['datasets']['train']['scale'] = 2.0
    check_options(opt)  # the top-level scale changes no set: accepted
    opt['datasets']['val_1']['scale'] = 3.0
    with pytest.raises(OptionError, match=r'override datasets:val_1 \(scale 3\.0\)'):
        check_options(opt)
    # crop_border: scale is NODESRModel's: under SRModel with a stock network and dataset it is refused
    opt = load(write_train_yml(tmp_path))
    opt.update(model_type='SRModel', network_g={'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'upscale': 2})
    opt['datasets'] = {'val_1': {'name': 'v', 'type': 'PairedImageDataset', 'dataroot_gt': 'hr', 'dataroot_lq': 'hr',
                                 'io_backend': {'type': 'disk'}}}
    with pytest.raises(OptionError, match="val:metrics:psnr:crop_border: 'scale'.*NODESRModel"):
        check_options(opt, is_train=False)
    for metric in opt['val']['metrics'].values():
        metric['crop_border'] = 2
    check_options(opt, is_train=False)


@pytest.mark.parametrize('door', ['nodesr train', 'basicsr train.py'])
def test_start_up_reads_the_file_once_for_the_checks_and_builds_each_dataset_once(tmp_path, monkeypatch, door):
    """The checks read the option file once (BasicSR's parse_options once more) and build NODE-SR's datasets
    before any folder exists; BasicSR's pipeline takes those instead of building them again."""
    import basicsr.train as bt
    write_data(str(tmp_path))
    path = write_yml(str(tmp_path), tiny_train_options('tiny', total_iter=1))
    monkeypatch.chdir(tmp_path)
    reads, built, init, load = [], [], ContinuousScalePairedDataset.__init__, yaml.load
    monkeypatch.setattr(yaml, 'load', lambda *a, **k: reads.append(1) or load(*a, **k))
    monkeypatch.setattr(ContinuousScalePairedDataset, '__init__', lambda self, opt: built.append(1) or init(self, opt))

    def stop(opt):  # after BasicSR built its datasets
        raise InterruptedError(len(built), (tmp_path / 'experiments' / 'tiny').is_dir())

    monkeypatch.setattr(bt, 'build_model', stop)
    with pytest.raises(InterruptedError) as stopped:
        if door == 'nodesr train':
            nodesr_train.main(['-opt', path])
        else:
            monkeypatch.setattr('sys.argv', ['train.py', '-opt', path])
            bt.train_pipeline(str(tmp_path))
    assert stopped.value.args == (3, True) and len(reads) == 2  # train, val_1, val_2
