"""One real training step (``build_trainer`` + ``SSLTrainer.train``) for EVERY registered method,
checked against a hand-run reference step on a copy of the initial model.

Parametrised over ``METHOD_REGISTRY.names()``, so a newly registered method gets the test
for free. For each method:

- the logged loss is finite and equals the loss of the initial model on the same views;
- the online (trainable) parameters and all buffers after the step equal a reference step
  (fresh optimizer from ``build_optimizer``, the schedule's lr, one forward/backward/step);
  at least one online parameter changed;
- parameters with ``requires_grad=False`` are not touched by the optimizer (snapshot taken
  by a probe hook right after the optimizer step, before the method's hooks run), and a
  target network ``target_<name>`` of an online ``<name>`` (BYOL, MoCo-style methods) is
  afterwards exactly the EMA ``tau * old_target + (1 - tau) * new_online`` with the step's
  logged tau;
- metrics.jsonl has one line per logged iteration (here: iteration 1 only).
"""
import copy
import json
import math
import os

import pytest
import torch

from ssl_zoo.engine.defaults import build_trainer
from ssl_zoo.engine.hooks import LRScheduler
from ssl_zoo.modeling.method import METHOD_REGISTRY
from ssl_zoo.solver.build import build_optimizer

torch.set_num_threads(1)


class _AfterOptimizerProbe:
    """Wraps the method's ``after_step`` (which the trainer calls right after ``optimizer.step()``):
    sees the parameters after the optimizer and before the method's own update (e.g. the EMA)."""

    def __init__(self, model):
        self.frozen_after_optimizer = None
        self.model, self.wrapped = model, model.after_step
        model.after_step = self

    def __call__(self, step, max_steps):
        self.frozen_after_optimizer = {n: p.detach().clone() for n, p in self.model.named_parameters()
                                       if not p.requires_grad}
        return self.wrapped(step, max_steps)


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _target_pairs(model):
    """``(target_name, online_name)`` for every child ``target_X`` with an online ``X``."""
    children = dict(model.named_children())
    return [(n, n[len("target_"):]) for n in children
            if n.startswith("target_") and n[len("target_"):] in children]


@pytest.mark.parametrize("method", METHOD_REGISTRY.names())
def test_one_training_step_matches_reference(method, tiny_cfg, tmp_path):
    cfg = tiny_cfg.clone()
    # No warm-up (step 0 would have lr 0) and a peak lr large enough for visible updates.
    cfg.merge_from_list(["MODEL.METHOD", method, "SOLVER.MAX_ITER", 1, "SOLVER.WARMUP_ITERS", 0,
                         "SOLVER.WARMUP_EPOCHS", 0.0, "SOLVER.BASE_LR", 2.0, "OUTPUT_DIR", str(tmp_path)])
    node = cfg.get(method.upper())  # the method's own config node, by convention
    if node is not None:
        for key in node:  # paper-size heads (e.g. Barlow Twins' 8192-wide projector) -> small
            if key.endswith("_DIM") and isinstance(node[key], int):
                node[key] = 64
        if "TAU_BASE" in node:
            node.TAU_BASE = 0.9  # a target that moves visibly, so the EMA check discriminates
    torch.manual_seed(0)
    trainer = build_trainer(cfg)
    model = trainer.unwrapped_model
    assert trainer.max_iter == 1

    lr_hook = next(h for h in trainer.hooks if isinstance(h, LRScheduler))
    probe = _AfterOptimizerProbe(model)

    # Record the exact views the trainer feeds and the RNG state right before the forward.
    seen = {}
    transform = trainer.data.batch_transform

    def recording_transform(batch, index):
        views, labels = transform(batch, index)
        seen["views"] = [v.clone() for v in views]
        seen["labels"] = None if labels is None else labels.clone()
        seen["rng"] = torch.get_rng_state()
        return views, labels

    trainer.data.batch_transform = recording_transform

    model.after_step, saved = probe.wrapped, model.after_step  # a deepcopy must not copy the probe
    initial = copy.deepcopy(model)
    model.after_step = saved
    before = _state(model)
    trainer.train()
    after = _state(model)

    # ---- reference step on the initial model
    ref = initial.train()
    opt = build_optimizer(cfg, ref, lr_rules=type(ref).lr_rules(cfg))
    lr = lr_hook.schedule(0)
    for g in opt.param_groups:
        g["lr"] = lr * g.get("lr_mult", 1.0)
    torch.set_rng_state(seen["rng"])
    out = ref(seen["views"], seen["labels"])
    ref_loss = float(out["loss"].detach())
    out["loss"].backward()
    opt.step()

    loss = trainer.last_outputs["loss"]
    assert math.isfinite(loss)
    assert loss == pytest.approx(ref_loss, rel=1e-6, abs=1e-7)

    params = dict(model.named_parameters())
    trainable = {n for n, p in params.items() if p.requires_grad}
    frozen = set(params) - trainable
    ref_state = ref.state_dict()
    for name in trainable:  # online parameters: exactly the reference optimizer step
        torch.testing.assert_close(after[name], ref_state[name], rtol=1e-5, atol=1e-7, msg=name)
    buffers = [n for n, _ in model.named_buffers()]
    for name in buffers:  # BN running statistics etc.: same forward passes as the reference
        torch.testing.assert_close(after[name], ref_state[name], rtol=1e-5, atol=1e-7, msg=name)
    changed = [n for n in trainable if not torch.equal(after[n], before[n])]
    assert changed, "no online parameter changed in one optimizer step"
    assert max((after[n] - before[n]).abs().max().item() for n in changed) > 1e-4

    # ---- frozen parameters: untouched by the optimizer ...
    assert probe.frozen_after_optimizer is not None and set(probe.frozen_after_optimizer) == frozen
    for name in frozen:
        assert torch.equal(probe.frozen_after_optimizer[name], before[name]), f"optimizer changed frozen {name}"
    # ... and afterwards changed only by the EMA of the online network (if the method has one)
    pairs = _target_pairs(model)
    covered = set()
    if pairs:
        taus = trainer.storage.history("tau")
        assert [it for it, _ in taus] == [1], taus
        tau = taus[0][1]
        for tgt, onl in pairs:
            t_names = [n for n, _ in getattr(model, tgt).named_parameters()]
            o_names = [n for n, _ in getattr(model, onl).named_parameters()]
            assert t_names == o_names
            for n in t_names:
                t, o = f"{tgt}.{n}", f"{onl}.{n}"
                expected = tau * before[t] + (1 - tau) * after[o]
                torch.testing.assert_close(after[t], expected, rtol=1e-6, atol=1e-7, msg=t)
                covered.add(t)
            # the EMA moved the target (online changed), target BN statistics are its own
            assert any(not torch.equal(after[f"{tgt}.{n}"], before[f"{tgt}.{n}"]) for n in t_names)
    for name in frozen - covered:  # frozen and not an EMA target: must not change at all
        assert torch.equal(after[name], before[name]), name
    if method == "BYOL":
        assert pairs == [("target_backbone", "backbone"), ("target_projector", "projector")]
        assert covered == frozen and tau == pytest.approx(0.9)

    # ---- metrics.jsonl: one line per logged iteration
    with open(os.path.join(str(tmp_path), "metrics.jsonl")) as f:
        lines = [json.loads(line) for line in f]
    iterations = [r["iteration"] for r in lines]
    assert iterations == [1], lines
    assert lines[0]["loss"] == loss
    assert lines[0]["lr"] == pytest.approx(lr)
    assert os.path.isfile(os.path.join(str(tmp_path), "model_final.pth"))
