"""DDP: the whole ODE solve is one forward, so DistributedDataParallel averages NODE-SR gradients exactly.

Two CPU processes on gloo each take half of a mixed-scale batch; their averaged gradients (and the
weights after two SGD steps) must equal one process training on the whole batch, for direct
backprop, checkpointing and the adjoint method.
"""
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from helpers import one_thread_fixture, randomized
from nodesr_arch.archs.vdsr_arch import NODEVDSR

one_thread = one_thread_fixture()
SCALES = torch.tensor([1.5, 3.7, 2.2, 4.0])
CONFIGS = {'direct': {'num_steps': 2}, 'checkpoint': {'num_steps': 2, 'checkpoint': True},
           'adjoint': {'num_steps': 2, 'adjoint': True}}


def make_batch():
    gen = torch.Generator().manual_seed(0)
    return torch.rand(4, 3, 12, 10, generator=gen), torch.rand(4, 3, 12, 10, generator=gen)


def make_net(ode):
    return randomized(NODEVDSR(num_feat=6, num_layer=3, ode=ode), seed=1)


def train(net, x, gt, scales, steps=2):
    """``steps`` SGD steps of L1 loss; returns the first step's gradients and the final weights."""
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    first = None
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.l1_loss(net(x, scales), gt).backward()
        if first is None:
            first = [p.grad.clone() for p in net.parameters()]
        opt.step()
    return first, [p.detach().clone() for p in net.parameters()]


def _worker(rank, world_size, store, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{store}', rank=rank, world_size=world_size)
    try:
        x, gt = make_batch()
        half = slice(2 * rank, 2 * rank + 2)
        results = {}
        for name, ode in CONFIGS.items():
            net = DistributedDataParallel(make_net(ode))
            results[name] = train(net, x[half], gt[half], SCALES[half])
        torch.save(results, os.path.join(out_dir, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()


def test_ddp_two_processes_equal_one_process_on_the_whole_batch(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / 'store'), str(tmp_path)), nprocs=2, join=True)
    x, gt = make_batch()
    for name, ode in CONFIGS.items():
        grads, weights = train(make_net(ode), x, gt, SCALES)
        for rank in range(2):
            ddp_grads, ddp_weights = torch.load(tmp_path / f'rank{rank}.pt', weights_only=True)[name]
            for a, b in zip(grads + weights, ddp_grads + ddp_weights):
                assert torch.allclose(a, b, atol=1e-5, rtol=0), name
    assert any(g.abs().max() > 1e-3 for g in grads)  # the comparison is not between zeros
