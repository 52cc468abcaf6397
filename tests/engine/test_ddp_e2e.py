"""2-process gloo DDP + SyncBN BYOL step == one process on the full batch with plain BatchNorm.

Both sides go through ``build_trainer`` (rank side: process group initialised, so it converts
BN with ``convert_sync_batchnorm`` because MODEL.SYNC_BN is True and wraps the model in DDP).
The trainer's data is replaced by ONE fixed global batch of views (the device augmentation is
seeded per rank, so the real loader cannot give both sides the same views): rank r gets rows
``r*B/2 .. (r+1)*B/2`` of every view, the reference gets all rows. After one optimizer step and
the EMA hook, online / target parameters and BN running statistics must match (atol 1e-5):
SyncBN gives every rank the global-batch statistics, and DDP's gradient average of the two
per-rank mean losses equals the gradient of the full-batch mean loss.
"""
import itertools
import os
import socket
import sys
from types import SimpleNamespace

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for _p in (os.path.join(REPO_ROOT, "tools"), REPO_ROOT):  # spawned workers do not run conftest
    if _p not in sys.path:
        sys.path.insert(0, _p)

from _paths import import_methods  # noqa: E402
from ssl_zoo.engine.launch import find_free_port

torch.set_num_threads(1)
GLOBAL_BATCH, WORLD = 16, 2


def _cfg(cfg_file, out_dir):
    import_methods()
    from ssl_zoo.config import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(cfg_file)
    cfg.merge_from_list(["OUTPUT_DIR", out_dir])
    return cfg


def _views():
    g = torch.Generator().manual_seed(123)
    return [torch.randn(GLOBAL_BATCH, 3, 32, 32, generator=g) for _ in range(2)]


def _fixed_data(views):
    """Stands in for TrainData: the same (already augmented) views at every step."""
    return SimpleNamespace(iterator=itertools.repeat(None), batch_transform=lambda batch, it: (views, None))


def _train_one_step(cfg, views):
    from ssl_zoo.engine.defaults import build_trainer

    torch.manual_seed(0)  # same initialisation in every process (DDP also broadcasts rank 0's)
    trainer = build_trainer(cfg)
    trainer.data = _fixed_data(views)
    trainer.train()
    return trainer


def _worker(rank, port, cfg_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        from ssl_zoo.modeling.batchnorm import AllReduceSyncBatchNorm

        half = GLOBAL_BATCH // WORLD
        views = [v[rank * half:(rank + 1) * half] for v in _views()]
        trainer = _train_one_step(_cfg(cfg_file, out_dir), views)
        model = trainer.unwrapped_model
        info = {
            "ddp": isinstance(trainer.model, nn.parallel.DistributedDataParallel),
            "num_sync_bn": sum(isinstance(m, AllReduceSyncBatchNorm) for m in model.modules()),
            "num_plain_bn": sum(type(m) in (nn.BatchNorm1d, nn.BatchNorm2d) for m in model.modules()),
            "loss": trainer.last_outputs["loss"],
            "tau": trainer.storage.history("tau"),
            "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        }
        torch.save(info, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()



def test_ddp_syncbn_step_equals_single_process_full_batch(tiny_cfg, tmp_path):
    cfg = tiny_cfg.clone()
    # SGD (not LARS, whose trust ratio shrinks conv updates to ~1e-5) so that a gradient
    # mismatch shows up well above the tolerance.
    cfg.merge_from_list([
        "MODEL.SYNC_BN", True, "SOLVER.MAX_ITER", 1, "SOLVER.WARMUP_ITERS", 0, "SOLVER.WARMUP_EPOCHS", 0.0,
        "SOLVER.BASE_LR", 2.0, "SOLVER.OPTIMIZER", "SGD", "SOLVER.IMS_PER_BATCH", GLOBAL_BATCH, "BYOL.TAU_BASE", 0.9,
        "BYOL.PROJECTOR_HIDDEN_DIM", 64, "BYOL.PROJECTOR_OUT_DIM", 32, "BYOL.PREDICTOR_HIDDEN_DIM", 64,
    ])
    cfg_file = str(tmp_path / "ddp.yaml")
    with open(cfg_file, "w") as f:
        f.write(cfg.dump())
    ddp_dir = tmp_path / "ddp"
    ddp_dir.mkdir()
    mp.spawn(_worker, args=(find_free_port(), cfg_file, str(ddp_dir)), nprocs=WORLD, join=True)
    ranks = [torch.load(ddp_dir / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]

    # reference: one process, plain BatchNorm, the full global batch
    ref_cfg = _cfg(cfg_file, str(tmp_path / "ref"))
    from ssl_zoo.modeling.method import build_method

    torch.manual_seed(0)
    init = build_method(ref_cfg).state_dict()  # the untrained model, to check that things moved
    ref = _train_one_step(ref_cfg, _views())
    ref_model = ref.unwrapped_model
    assert not isinstance(ref.model, nn.parallel.DistributedDataParallel)
    ref_state = ref_model.state_dict()
    n_bn = sum(type(m) in (nn.BatchNorm1d, nn.BatchNorm2d) for m in ref_model.modules())

    for r in ranks:
        assert r["ddp"] and r["num_sync_bn"] == n_bn > 0 and r["num_plain_bn"] == 0
        assert r["tau"] == ref.storage.history("tau")
        assert r["state"].keys() == ref_state.keys()
        for k, v in ref_state.items():  # online + target parameters, BN running stats, counters
            torch.testing.assert_close(r["state"][k], v, rtol=1e-5, atol=1e-5, msg=f"{k}")
    # per-rank losses are half-batch means: their average is the full-batch loss
    mean_loss = sum(r["loss"] for r in ranks) / WORLD
    assert abs(mean_loss - ref.last_outputs["loss"]) < 1e-5

    # the comparison is not vacuous: the step moved online and target weights and BN statistics
    for k in ("backbone.conv1.weight", "target_backbone.conv1.weight", "projector.0.weight",
              "predictor.0.weight", "backbone.bn1.running_mean", "target_backbone.bn1.running_var",
              "projector.1.running_mean"):
        assert (ref_state[k] - init[k]).abs().max() > 1e-3, k
    moved = [k for k, v in ref_state.items() if v.is_floating_point() and (v - init[k]).abs().max() > 1e-3]
    assert any(k.startswith("target_") and "running" not in k for k in moved)
    assert any(k.startswith("backbone.") and "running_mean" in k for k in moved)
