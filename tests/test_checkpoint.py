"""NODESRModel's checkpoints: atomic files, training states that load weights-only, BasicSR's keys."""
import os

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.parallel import DataParallel

import nodesr_arch  # noqa: F401,I001  (compat fixes, registries)
from basicsr.models.base_model import BaseModel
from helpers import one_thread_fixture
from nodesr_arch.models import checkpoint
from nodesr_arch.models.nodesr_model import NODESRModel

one_thread = one_thread_fixture()


def _state_model(tmp_path, cls=NODESRModel):
    from basicsr.models.lr_scheduler import MultiStepRestartLR
    model = cls.__new__(cls)  # only the attributes the savers use
    net = nn.Conv2d(3, 3, 3)
    opt = torch.optim.Adam(net.parameters(), lr=np.float64(1e-4), betas=(0.9, 0.999))
    net(torch.rand(1, 3, 5, 5)).mean().backward()
    opt.step()
    model.optimizers = [opt]
    model.schedulers = [MultiStepRestartLR(opt, milestones=[np.int64(10)], gamma=np.float64(0.5))]
    model.opt = {'rank': 0, 'path': {'training_states': str(tmp_path), 'models': str(tmp_path)}}
    model.get_bare_model = lambda net: net.module if isinstance(net, DataParallel) else net
    return model, net


def test_training_state_with_numpy_scalars_loads_weights_only(tmp_path):
    model, _ = _state_model(tmp_path)
    BaseModel.save_training_state(model, 0, 7)  # BasicSR's own: numpy scalars stay
    with pytest.raises(Exception, match='[Ww]eights only'):
        torch.load(tmp_path / '7.state', weights_only=True)
    model.save_training_state(0, 8)
    state = torch.load(tmp_path / '8.state', weights_only=True)
    assert state['iter'] == 8 and state['schedulers'][0]['gamma'] == 0.5
    assert state['optimizers'][0]['param_groups'][0]['lr'] == pytest.approx(1e-4)


def test_to_python_numbers_keeps_structure():
    from collections import Counter, OrderedDict
    value = checkpoint.to_python_numbers(OrderedDict(a=np.float32(1.5), b=[np.int64(2), (np.bool_(True), )],
                                                     c=Counter({np.int64(3): 1}), d=np.arange(2), t=torch.ones(1)))
    assert type(value) is OrderedDict and type(value['a']) is float and type(value['b'][0]) is int
    assert value['b'][1] == (True, ) and type(value['b'][1][0]) is bool
    assert value['c'] == Counter({3: 1}) and type(next(iter(value['c']))) is int
    assert value['d'] == [0, 1] and isinstance(value['t'], torch.Tensor)


def _failing_save(obj, f, *args, **kwargs):
    f.write(b'partial bytes')
    raise OSError('disk full')


def test_atomic_save_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / 'net_g_5.pth'
    checkpoint.atomic_torch_save({'params': {'w': torch.ones(2)}}, str(path))
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600
    monkeypatch.setattr(torch, 'save', _failing_save)
    with pytest.raises(OSError, match='disk full'):
        checkpoint.atomic_torch_save({'params': {'w': torch.zeros(2)}}, str(path))
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ['net_g_5.pth']  # no temporary left over
    assert torch.equal(torch.load(path, weights_only=True)['params']['w'], torch.ones(2))  # old file intact


def test_savers_retry_then_raise_and_leave_nothing(tmp_path, monkeypatch):
    model, net = _state_model(tmp_path)
    calls = []
    monkeypatch.setattr(torch, 'save', lambda *a, **k: calls.append(1) or _failing_save(*a, **k))
    monkeypatch.setattr('time.sleep', lambda s: None)
    with pytest.raises(OSError):
        model.save_training_state(0, 3)
    assert len(calls) == 3  # BasicSR's three tries; then the error, not a silently missing state
    with pytest.raises(OSError):
        model.save_network(net, 'net_g', 3)
    assert os.listdir(tmp_path) == []


def test_save_network_keeps_basicsr_keys(tmp_path):
    model, net = _state_model(tmp_path)
    ema = nn.Conv2d(3, 3, 3)
    model.save_network([DataParallel(net), ema], 'net_g', -1, param_key=['params', 'params_ema'])
    saved = torch.load(tmp_path / 'net_g_latest.pth', weights_only=True)
    assert set(saved) == {'params', 'params_ema'}
    assert set(saved['params']) == {'weight', 'bias'}  # no 'module.' prefix
    assert torch.equal(saved['params_ema']['weight'], ema.weight)
