"""SSLTrainer and hooks on a toy method: hook order, gradient accumulation, NaN handling,
metrics.jsonl, and exact resume after SIGKILL (compared with an uninterrupted run)."""
import contextlib
import json
import logging
import math
import os
import signal
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ssl_zoo.checkpoint import Checkpointer
from ssl_zoo.engine.hook_base import HookBase
from ssl_zoo.engine.hooks import (CollapseMonitor, KNNMonitor, LRScheduler, MetricsWriter, PeriodicCheckpointer,
                                  TrainingSummary)
from ssl_zoo.engine.trainer import SSLTrainer
from ssl_zoo.modeling.method import SSLMethod

torch.set_num_threads(1)
DIM, B = 6, 4


class ToyMethod(SSLMethod):
    """Two views through a linear backbone + head; the loss is a per-sample mean (so a big
    batch equals accumulated micro-batches). ``dropout`` consumes the global RNG, which
    makes the resume test depend on RNG restoration."""

    def __init__(self, dropout: float = 0.0, nan_at_index: int = -1):
        super().__init__()
        self.backbone = nn.Linear(DIM, 5)
        self.head = nn.Linear(5, 3)
        self.dropout = dropout
        self.nan_at_index = nan_at_index

    def forward(self, views, labels=None):
        z1, z2 = (self.head(F.dropout(self.backbone(v), self.dropout, self.training)) for v in views)
        loss = ((z1 - z2) ** 2).sum(1).mean() + 0.1 * ((z1 ** 2).sum(1) - 1).pow(2).mean()
        if labels is not None and self.nan_at_index in labels.tolist():
            loss = loss * float("nan")
        return {"loss": loss, "z_norm": z1.norm(dim=1).mean().detach(), "embedding": z1.detach()}


class ToyData:
    """Batch ``index`` is a pure function of (seed, index); the iterator yields indices from ``start``."""

    def __init__(self, seed=1, start=0, batch=B):
        self.seed, self.batch = seed, batch

        def gen():
            i = start
            while True:
                yield i
                i += 1

        self.iterator = gen()

    def batch_transform(self, batch, index):
        assert batch == index, "the trainer must ask for the batch the iterator produced"
        g = torch.Generator().manual_seed(self.seed * 100_003 + index)
        x = torch.randn(self.batch, DIM, generator=g)
        views = [x + 0.1 * torch.randn(x.shape, generator=g) for _ in range(2)]
        return views, torch.full((self.batch,), index)


def _labelled(n, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, DIM, generator=g) + 2 * F.one_hot(y, DIM).float()
    return [(x[i:i + 8], y[i:i + 8]) for i in range(0, n, 8)]


class Recorder(HookBase):
    def __init__(self, name, log):
        self.name, self.log = name, log

    def before_train(self):
        self.log.append(f"{self.name}.before_train")

    def before_step(self):
        self.log.append(f"{self.name}.before_step{self.trainer.iter}")

    def after_step(self):
        out = self.trainer.last_outputs
        assert isinstance(out["loss"], float) and out["embedding"].shape == (B, 3)
        self.log.append(f"{self.name}.after_step{self.trainer.iter}")

    def after_train(self):
        self.log.append(f"{self.name}.after_train")


def _cosine(step, max_steps=20, peak=0.05):
    return peak * 0.5 * (1 + math.cos(math.pi * step / max_steps))


def build_toy_trainer(out, *, resume=False, max_iter=20, period=5, extra_hooks=(), nan_at_index=-1):
    """Mirrors ``ssl_zoo.engine.defaults.build_trainer``: model, optimizer, checkpoint, THEN data."""
    torch.manual_seed(0)
    model = ToyMethod(dropout=0.2, nan_at_index=nan_at_index)
    opt = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9)
    ckpt = Checkpointer(out, model, opt)
    found, data = ckpt.find_resumable() if resume else ("", None)  # as build_trainer: pointer, else newest loadable
    state = ckpt.load(found, data=data) if found else {}
    data = ToyData(seed=1, start=state.get("iteration", 0))
    hooks = [LRScheduler(_cosine),
             KNNMonitor(None, _labelled(48, 10), _labelled(24, 11), period=10, ks=(5, 1), num_classes=3),
             CollapseMonitor(5), TrainingSummary(out, period=5),
             # build_hooks' order: a step's metrics are written before its checkpoint
             MetricsWriter(out, period=1, tensorboard=False), PeriodicCheckpointer(ckpt, period), *extra_hooks]
    trainer = SSLTrainer(model, opt, data, max_iter, device="cpu", hooks=hooks)
    if state:
        trainer.load_state_dict(state)
    return trainer


def _losses(out):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        lines = [json.loads(line) for line in f]
    return [(r["iteration"], r["loss"]) for r in lines if "loss" in r], lines


def test_hooks_called_in_order():
    log = []
    torch.manual_seed(0)
    model = ToyMethod()
    trainer = SSLTrainer(model, torch.optim.SGD(model.parameters(), lr=0.1), ToyData(), 2,
                         hooks=[Recorder("A", log), Recorder("B", log)])
    trainer.train()
    assert log == ["A.before_train", "B.before_train",
                   "A.before_step0", "B.before_step0", "A.after_step0", "B.after_step0",
                   "A.before_step1", "B.before_step1", "A.after_step1", "B.after_step1",
                   "A.after_train", "B.after_train"]
    assert trainer.iter == trainer.completed_steps == 2
    assert [it for it, _ in trainer.storage.history("loss")] == [1, 2]


class BigBatchData(ToyData):
    """Step ``i`` = the concatenation of ToyData's micro-batches ``i*n .. i*n+n-1``."""

    def __init__(self, n):
        super().__init__()
        self.n = n

    def batch_transform(self, batch, index):
        parts = [ToyData.batch_transform(self, j, j) for j in range(index * self.n, index * self.n + self.n)]
        return [torch.cat([p[0][v] for p in parts]) for v in range(2)], torch.cat([p[1] for p in parts])


@pytest.mark.parametrize("clip", [0.0, 0.5])
def test_accumulation_equals_big_batch(clip):
    params = []
    for accum, data in [(4, ToyData()), (1, BigBatchData(4))]:
        torch.manual_seed(0)
        model = ToyMethod().double()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
        data.batch_transform = (lambda f: lambda b, i: ([v.double() for v in f(b, i)[0]], f(b, i)[1]))(data.batch_transform)
        trainer = SSLTrainer(model, opt, data, 3, accum_steps=accum, clip_grad_norm=clip)
        trainer.train()
        params.append([p.detach().clone() for p in model.parameters()])
        if accum == 4:
            assert trainer.images_per_step == 4 * B
    for a, b in zip(*params):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_nan_loss_raises_before_step_and_keeps_checkpoint(tmp_path):
    out = str(tmp_path)
    log = []

    class Snapshot(HookBase):  # bytes of the good checkpoint right after it is written
        def after_step(self):
            if self.trainer.completed_steps == 5:
                self.good = open(os.path.join(out, "model_0000005.pth"), "rb").read()
                self.params = [p.detach().clone() for p in self.trainer.model.parameters()]

    snap = Snapshot()
    # micro-batch index 7 is step 7 (accum 1): NaN in its loss
    trainer = build_toy_trainer(out, nan_at_index=7, extra_hooks=[snap, Recorder("R", log)])
    with pytest.raises(FloatingPointError, match=r"iteration=7\b.*'loss': nan"):
        trainer.train()
    assert "R.after_step6" in log and "R.after_step7" not in log and "R.after_train" not in log
    assert open(os.path.join(out, "last_checkpoint")).read() == "model_0000005.pth"
    assert sorted(f for f in os.listdir(out) if f.endswith(".pth")) == ["model_0000005.pth"]
    assert open(os.path.join(out, "model_0000005.pth"), "rb").read() == snap.good
    # the bad step did not touch the parameters: they are those after step 6, finite
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def _child(out, kill_at):
    """Run in a subprocess: train, and SIGKILL ourselves right after step ``kill_at``."""

    class Killer(HookBase):
        def after_step(self):
            if self.trainer.completed_steps == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    build_toy_trainer(out, resume=True, extra_hooks=[Killer()]).train()


def test_kill_and_resume_matches_uninterrupted_run(tmp_path):
    ref = str(tmp_path / "A")
    a = build_toy_trainer(ref)
    a.train()
    a_params = [p.detach().clone() for p in a.model.parameters()]

    run = str(tmp_path / "B")
    code = f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); import test_trainer as t; t._child({run!r}, 12)"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(os.path.dirname(__file__))), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert open(os.path.join(run, "last_checkpoint")).read() == "model_0000010.pth"
    assert len(_losses(run)[0]) == 12  # steps 11, 12 ran after the checkpoint; they are redone

    b = build_toy_trainer(run, resume=True)
    assert b.start_iter == 10
    b.train()
    losses_a, lines_a = _losses(ref)
    losses_b, lines_b = _losses(run)
    assert [i for i, _ in losses_a] == list(range(1, 21))
    assert losses_b == losses_a  # exact: same data, same RNG, same optimizer state
    for pa, pb in zip(a_params, b.model.parameters()):
        assert torch.equal(pa, pb)
    # every metrics.jsonl line parses and has the expected content
    strip = lambda ls: [{k: v for k, v in r.items() if k != "images_per_s"} for r in ls]  # noqa: E731
    assert strip(lines_b) == strip(lines_a)
    assert lines_a[0]["iteration"] == 0 and "knn_random_init" in lines_a[0]
    assert all("lr" in r and "z_norm" in r for r in lines_a if "loss" in r)
    # kNN history (incl. random init) survives the resume, and the summary reports it
    sa = json.load(open(os.path.join(ref, "summary.json")))
    sb = json.load(open(os.path.join(run, "summary.json")))
    for key in ("iterations", "final_loss", "knn_top1", "knn_top1_random_init", "knn_top1_delta"):
        assert sa[key] == sb[key], key
    assert sa["iterations"] == 20 and sa["knn_top1_delta"] == sa["knn_top1"] - sa["knn_top1_random_init"]
    assert os.path.getsize(os.path.join(run, "summary.png")) > 0
    assert os.path.isfile(os.path.join(run, "model_final.pth"))



@pytest.mark.parametrize("amp_dtype", [torch.bfloat16, torch.float16])
def test_mixed_precision_runs_and_saves_scaler_state(amp_dtype):
    torch.manual_seed(0)
    model = ToyMethod()
    trainer = SSLTrainer(model, torch.optim.SGD(model.parameters(), lr=0.01), ToyData(), 3, amp_dtype=amp_dtype,
                         clip_grad_norm=1.0)
    out = trainer.train()
    assert math.isfinite(out["loss"]) and math.isfinite(out["grad_norm"])
    assert ("grad_scaler" in trainer.state_dict()) == (amp_dtype == torch.float16)  # fp16 only: loss scaling


@contextlib.contextmanager
def _hook_log_records(level=logging.INFO, name="ssl_zoo.engine.hooks"):
    """Collects the log records of logger ``name`` (default the hooks') at ``level`` and above into a list."""
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    hook_logger = logging.getLogger(name)
    old_level = hook_logger.level
    hook_logger.addHandler(handler)
    hook_logger.setLevel(level)
    try:
        yield records
    finally:
        hook_logger.removeHandler(handler)
        hook_logger.setLevel(old_level)


def test_collapse_monitor_warns_on_collapsed_embedding():

    class Collapsed(ToyMethod):
        def forward(self, views, labels=None):
            out = super().forward(views, labels)
            out["embedding"] = torch.ones(B, 3) + 1e-8 * torch.randn(B, 3)
            return out

    with _hook_log_records() as records:
        torch.manual_seed(0)
        model = Collapsed()
        trainer = SSLTrainer(model, torch.optim.SGD(model.parameters(), lr=0.01), ToyData(), 2,
                             hooks=[CollapseMonitor(period=1)])
        trainer.train()
    assert any("Possible collapse at iteration 1" in r.getMessage() for r in records)
    assert trainer.storage.latest()["collapse_std"][0] < 1e-6

def test_collapse_monitor_warns_once_on_dimensional_collapse_and_logs_recovery():
    """Embeddings spread over 2 of 64 directions keep a large std (the std test passes) but an
    effective rank of ~2: the monitor warns once for the episode (not every period, nor again
    while the rank hovers around the threshold) and says when the signals are healthy again."""

    class Flattened(ToyMethod):
        """Embeddings ``[64, 64]`` spanning 2 directions (effective rank ~2) in batches 0-3 and
        6-7, 4 directions (~3.8: above the threshold 3 but below the recovery bar 6) in 4-5, and
        all 64 from batch 8 on."""

        def forward(self, views, labels=None):
            out = super().forward(views, labels)
            index = int(labels[0])
            dims = 64 if index >= 8 else 4 if index in (4, 5) else 2
            g = torch.Generator().manual_seed(index)
            out["embedding"] = torch.zeros(64, 64)
            out["embedding"][:, :dims] = torch.randn(64, dims, generator=g)
            return out

    with _hook_log_records() as records:
        torch.manual_seed(0)
        model = Flattened()
        trainer = SSLTrainer(model, torch.optim.SGD(model.parameters(), lr=0.01), ToyData(), 10,
                             hooks=[CollapseMonitor(period=1, min_effective_rank=3.0)])
        trainer.train()
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "dimensional collapse" in warnings[0] and "iteration 1" in warnings[0]
    assert "std of normalised" not in warnings[0]  # the std alone would not have caught it
    assert any("back to healthy at iteration 9" in r.getMessage() for r in records)
    assert trainer.storage.latest()["effective_rank"][0] > 20


class _RegisteredToy(ToyMethod):
    @classmethod
    def from_config(cls, cfg):
        return {"dropout": 0.1}


def test_build_trainer_end_to_end_with_stub_parts(tmp_path, monkeypatch):
    """``default_setup`` + ``build_trainer`` (+ resume) with the other engineers' modules
    replaced by stubs, so only the engine's wiring is tested here."""
    from ssl_zoo.config import get_cfg
    from ssl_zoo.engine.defaults import build_trainer, default_argument_parser, default_setup
    from ssl_zoo.modeling.method import METHOD_REGISTRY

    if "ToyTestMethod" not in METHOD_REGISTRY:
        METHOD_REGISTRY.register(_RegisteredToy, name="ToyTestMethod")
    starts = []

    def build_train_loader(cfg, start_iter=0):
        starts.append(start_iter)
        data = ToyData(seed=cfg.SEED, start=start_iter)
        data.iters_per_epoch, data.num_images = 4, 4 * 16
        return data

    import ssl_zoo.engine.defaults as defaults_module

    stubs = dict(build_train_loader=build_train_loader,
                 build_eval_loader=lambda cfg, name: _labelled(24, len(name)),
                 build_optimizer=lambda cfg, m, lr_rules=(): torch.optim.SGD(m.parameters(), lr=0.0, momentum=0.9),
                 build_lr_schedule=lambda cfg, ipe, max_iter: (lambda s: 0.01 * (1 - s / max_iter)))
    for name, fn in stubs.items():  # where build_trainer / build_hooks look them up
        monkeypatch.setattr(defaults_module, name, fn)

    out = str(tmp_path / "out")
    args = default_argument_parser().parse_args(["--num-gpus", "1", "SOLVER.EPOCHS", "3", "SOLVER.IMS_PER_BATCH", "16",
                                                   "MODEL.METHOD", "ToyTestMethod"])
    cfg = get_cfg(method_names=[])
    cfg.merge_from_list(args.opts + ["OUTPUT_DIR", out, "DEVICE", "cpu", "SOLVER.ACCUM_STEPS", 2,
                                     "SOLVER.CHECKPOINT_PERIOD", 3, "LOG.PERIOD", 2, "DATASETS.KNN_TRAIN", "bank",
                                     "DATASETS.KNN_TEST", "queries", "TEST.KNN_K", "(5,)", "TEST.KNN_PERIOD", 3])
    default_setup(cfg, args)
    trainer = build_trainer(cfg, resume=True)  # nothing to resume yet
    assert trainer.max_iter == 6 and trainer.start_iter == 0 and starts == [0]  # 3 epochs x 64 // (16 x 2)
    trainer.train()
    files = set(os.listdir(out))
    assert {"config.yaml", "log.txt", "metrics.jsonl", "summary.json", "summary.png", "last_checkpoint",
            "model_0000003.pth", "model_final.pth"} <= files
    assert any(f.startswith("events.out.tfevents") for f in files)
    assert get_cfg(method_names=[]).load_cfg(open(os.path.join(out, "config.yaml"))).SOLVER.EPOCHS == 3

    cfg.merge_from_list(["SOLVER.MAX_ITER", 8])
    trainer = build_trainer(cfg, resume=True)
    assert trainer.start_iter == 6 and starts == [0, 12]  # loader resumes at 6 steps x 2 micro-batches
    trainer.train()
    losses, lines = _losses(out)
    assert [i for i, _ in losses] == [2, 3, 4, 6, 8]  # LOG.PERIOD 2, plus the checkpoint step 3
    knn_iters = [r["iteration"] for r in lines if "knn_top1_k5" in r]
    assert knn_iters == [0, 3, 6, 8]
    assert json.load(open(os.path.join(out, "summary.json")))["iterations"] == 8
