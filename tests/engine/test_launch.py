"""launch(): 2 CPU processes with gloo (collectives + DDP with gradient accumulation), and
the torchrun (environment variables) path."""
import json
import os
import socket

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

from ssl_zoo.engine.launch import launch
from ssl_zoo.engine.trainer import SSLTrainer
from ssl_zoo.modeling.method import SSLMethod
from ssl_zoo.utils import comm


class _Toy(SSLMethod):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(4, 3)

    def forward(self, views, labels=None):
        z = self.backbone(views[0])
        return {"loss": ((z - views[1][:, :3]) ** 2).sum(1).mean(), "embedding": z.detach()}


class _Data:
    """Micro-batch ``index`` of rank ``rank``: a pure function of both."""

    def __init__(self, rank):
        self.rank = rank
        self.iterator = iter(range(10**9))

    def batch_transform(self, batch, index):
        g = torch.Generator().manual_seed(1000 * self.rank + index)
        return [torch.randn(2, 4, generator=g, dtype=torch.float64) for _ in range(2)], None


def _train(model, data, accum):
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    SSLTrainer(model, opt, data, 3, accum_steps=accum, device="cpu").train()


def _worker(out_dir):
    torch.set_num_threads(1)
    rank, world = comm.get_rank(), comm.get_world_size()
    t = torch.tensor([float(rank + 1)])
    dist.all_reduce(t)
    result = {"rank": rank, "world": world, "local_rank": comm.get_local_rank(), "all_reduce": t.item(),
              "all_gather": comm.all_gather(rank * 10),
              "reduce_dict": comm.reduce_dict({"x": torch.tensor(float(rank))})["x"].item(),
              "backend": dist.get_backend()}

    # DDP + accumulation of 2 micro-batches == one process on the union of all micro-batches
    torch.manual_seed(0)
    ddp = nn.parallel.DistributedDataParallel(_Toy().double())
    calls = []

    def counting_allreduce(state, bucket):
        calls.append(1)
        return default_hooks.allreduce_hook(None, bucket)

    ddp.register_comm_hook(None, counting_allreduce)
    _train(ddp, _Data(rank), accum=2)

    class Union(_Data):  # step i = micro-batches 2i, 2i+1 of every rank, concatenated
        def batch_transform(self, batch, index):
            parts = [_Data(r).batch_transform(j, j) for r in range(world) for j in (2 * index, 2 * index + 1)]
            return [torch.cat([p[0][v] for p in parts]) for v in range(2)], None

    torch.manual_seed(0)
    ref = _Toy().double()
    _train(ref, Union(0), accum=1)
    result["ddp_matches_big_batch"] = all(torch.allclose(a, b, rtol=1e-10, atol=1e-12)
                                          for a, b in zip(ddp.module.parameters(), ref.parameters()))
    result["allreduce_calls"] = len(calls)  # one per optimizer step: no_sync on the first micro-batch
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(result, f)


def test_launch_two_cpu_processes(tmp_path):
    launch(_worker, 2, args=(str(tmp_path),))
    results = [json.load(open(tmp_path / f"rank{r}.json")) for r in range(2)]
    for r, res in enumerate(results):
        assert res["rank"] == r and res["world"] == 2 and res["local_rank"] == r and res["backend"] == "gloo"
        assert res["all_reduce"] == 3.0 and res["all_gather"] == [0, 10] and res["reduce_dict"] == 0.5
        assert res["ddp_matches_big_batch"] and res["allreduce_calls"] == 3


def test_launch_from_torchrun_environment(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for k, v in dict(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)).items():
        monkeypatch.setenv(k, v)
    seen = []
    launch(lambda: seen.append((dist.is_initialized(), comm.get_world_size())), 8)  # num_gpus ignored
    assert seen == [(True, 1)] and not dist.is_initialized()


def test_launch_single_process_calls_directly():
    seen = []
    launch(seen.append, 1, args=(5,))
    assert seen == [5]
