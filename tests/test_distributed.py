"""HSM statistics over the global batch under torch.distributed (2 gloo processes on CPU)."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hi2m.model import objectives as obj
from _dist import free_port, init_gloo

LOSSES = [torch.tensor([0.2, 1.1, 0.4]), torch.tensor([2.5, 0.7])]  # ranks hold different batch sizes


def _worker(rank, port, out_dir):
    init_gloo(rank, port)
    try:
        local = LOSSES[rank].clone().requires_grad_()
        w = obj.hsm_weights(local, detach=False)
        w.sum().backward()
        torch.save({"w": w.detach(), "grad": local.grad}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
def test_hsm_weights_use_global_batch(tmp_path):
    mp.start_processes(_worker, args=(free_port(), str(tmp_path)), nprocs=2, start_method="spawn")
    everyone = torch.cat(LOSSES)
    global_w = obj.hsm_weights(everyone)  # one process, the whole batch
    got = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    torch.testing.assert_close(torch.cat([g["w"] for g in got]), global_w)
    # and not the per-rank statistics
    assert not torch.allclose(got[0]["w"], obj.hsm_weights(LOSSES[0]))
    assert all(g["grad"] is not None and torch.isfinite(g["grad"]).all() for g in got)
