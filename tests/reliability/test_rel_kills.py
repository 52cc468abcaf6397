"""SIGKILL at random points (between steps, in the middle of a checkpoint write, of the
``last_checkpoint`` write, of the metrics rewrite on resume), and SIGTERM / SIGINT
preemption: every interrupted-and-resumed run must end exactly like an uninterrupted one,
with metrics.jsonl whole at every moment (issue 13 items 1, 3 and "SIGTERM").

The runs are ``test_trainer.build_toy_trainer`` (the engine with every standard hook and a
dropout model, so RNG restoration matters) in forked child processes, so that a kill costs
milliseconds instead of a Python start-up.
"""
import io
import os
import random
import signal
import time

import pytest
import torch
from test_trainer import build_toy_trainer

import ssl_zoo.checkpoint.checkpointer as checkpointer_module
import ssl_zoo.engine.metrics_file as metrics_module
from ssl_zoo.checkpoint.files import remove_orphan_tmp
from ssl_zoo.engine.hook_base import HookBase
from ssl_zoo.engine.metrics_file import read_metrics
from ssl_zoo.engine.trainer import TrainingInterrupted

MAX_ITER = 20  # build_toy_trainer's default, checkpoints every 5 steps


def _strip(rows):
    return [{k: v for k, v in r.items() if k != "images_per_s"} for r in rows]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("uninterrupted"))
    trainer = build_toy_trainer(out)
    trainer.train()
    return _strip(read_metrics(out)), [p.detach().clone() for p in trainer.model.parameters()]


def _half_then_die(write_fn):
    """A ``write_fn(file)`` that writes half of what ``write_fn`` would, flushes, and SIGKILLs this process."""
    def dying(f):
        buf = io.BytesIO()
        write_fn(buf)
        f.write(buf.getvalue()[: max(1, len(buf.getvalue()) // 2)])
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return dying


class _KillAfterStep(HookBase):
    def __init__(self, step):
        self.step = step

    def after_step(self):
        if self.trainer.completed_steps == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def _run_child(out, plan):
    """Fork; the child resumes ``out`` (or starts it) and dies as ``plan`` says. Returns the child's status."""
    pid = os.fork()
    if pid:
        return os.waitpid(pid, 0)[1]
    try:  # child: never returns into pytest
        kind, arg = plan
        hooks = []
        if kind == "after_step":
            hooks.append(_KillAfterStep(arg))
        elif kind in ("checkpoint_write", "pointer_write"):
            target = {"checkpoint_write": ".pth", "pointer_write": "last_checkpoint"}[kind]
            real_save, real_atomic = checkpointer_module.save_file, checkpointer_module.atomic_write

            def save_file(data, path):  # the checkpoint file itself: torch.save through atomic_write
                if target == ".pth" and path.endswith(f"model_{arg:07d}.pth"):
                    from ssl_zoo.checkpoint import files
                    return files.atomic_write(path, _half_then_die(lambda f: torch.save(data, f)))
                return real_save(data, path)

            def atomic_write(path, write_fn):
                if target == "last_checkpoint" and path.endswith("last_checkpoint"):
                    return real_atomic(path, _half_then_die(write_fn))
                return real_atomic(path, write_fn)
            checkpointer_module.save_file, checkpointer_module.atomic_write = save_file, atomic_write
        elif kind == "metrics_rewrite":
            real = metrics_module.atomic_write
            metrics_module.atomic_write = lambda path, fn: real(path, _half_then_die(fn))
        remove_orphan_tmp(out)  # what default_setup does under the run-directory lock
        build_toy_trainer(out, resume=True, extra_hooks=hooks).train()
        os._exit(0)
    except BaseException:
        os._exit(3)


def _plans(rng):
    """A random kill plan for one trial: 1-2 kills at random points, then a clean finish."""
    kinds = ["after_step", "checkpoint_write", "pointer_write", "metrics_rewrite"]
    plans = []
    for _ in range(rng.randint(1, 2)):
        kind = rng.choice(kinds)
        plans.append((kind, rng.randint(1, MAX_ITER - 1) if kind == "after_step" else rng.choice([5, 10, 15])))
    return plans


@pytest.mark.parametrize("trial", range(6))
def test_random_sigkills_then_resume_equal_uninterrupted(trial, reference, tmp_path):
    ref_rows, ref_params = reference
    out = str(tmp_path)
    rng = random.Random(1000 + trial)
    plans = _plans(rng)
    for plan in plans:
        status = _run_child(out, plan)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        # a plan whose kill point was already passed (e.g. a checkpoint written before) just finishes
        assert killed or (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0), (plan, status)
        rows = read_metrics(out)  # whole at every moment: parses, iterations in order
        assert [r["iteration"] for r in rows] == sorted(r["iteration"] for r in rows), plan
        assert _strip(rows) == ref_rows[: len(rows)], plan  # what was written is the reference's prefix
        pointer = os.path.join(out, "last_checkpoint")
        if os.path.exists(pointer):
            name = open(pointer).read()
            assert torch.load(os.path.join(out, name), weights_only=True)["iteration"] > 0, plan
    status = _run_child(out, ("none", 0))  # finish
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (plans, status)
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]  # orphans of killed writes cleaned up
    assert _strip(read_metrics(out)) == ref_rows, plans
    final = torch.load(os.path.join(out, "model_final.pth"), weights_only=True)["model"]
    params = [final[k] for k in ("backbone.weight", "backbone.bias", "head.weight", "head.bias")]
    for a, b in zip(ref_params, params):
        assert torch.equal(a, b), plans


class _SlowSteps(HookBase):
    def after_step(self):
        time.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_preemption_signal_saves_at_step_boundary_and_resume_is_exact(signum, reference, tmp_path):
    ref_rows, ref_params = reference
    out = str(tmp_path)
    pid = os.fork()
    if pid == 0:
        try:
            build_toy_trainer(out, extra_hooks=[_SlowSteps()]).train()
            os._exit(0)
        except TrainingInterrupted as e:
            os._exit(128 + e.signum)
        except BaseException:
            os._exit(3)
    deadline = time.time() + 60
    while time.time() < deadline and len([r for r in read_metrics(out) if "loss" in r]) < 7:
        time.sleep(0.01)
    os.kill(pid, signum)  # mid-training, not at a checkpoint step
    status = os.waitpid(pid, 0)[1]
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 128 + signum, status
    stopped = int(open(os.path.join(out, "last_checkpoint")).read()[len("model_"):-len(".pth")])
    assert 7 <= stopped < MAX_ITER  # saved where it stopped, not at the last periodic checkpoint
    assert [r["iteration"] for r in read_metrics(out) if "loss" in r] == list(range(1, stopped + 1))

    resumed = build_toy_trainer(out, resume=True)
    assert resumed.start_iter == stopped
    resumed.train()
    assert _strip(read_metrics(out)) == ref_rows
    for a, b in zip(ref_params, resumed.model.parameters()):
        assert torch.equal(a, b)


def test_signal_during_the_last_step_finishes_the_run_normally(tmp_path):
    """A stop requested in the last step must not skip model_final.pth (found by the concurrent-run test)."""
    class SignalAtLastStep(HookBase):
        def before_step(self):
            if self.trainer.iter == MAX_ITER - 1:
                os.kill(os.getpid(), signal.SIGTERM)

    trainer = build_toy_trainer(str(tmp_path), extra_hooks=[SignalAtLastStep()])
    trainer.train()  # no TrainingInterrupted
    assert os.path.isfile(tmp_path / "model_final.pth")
    assert open(tmp_path / "last_checkpoint").read() == "model_final.pth"
