"""Kill-and-resume of the real stack: ``tools/train_net.py`` in subprocesses.

Run A trains 8 iterations uninterrupted. Run B (same config, another OUTPUT_DIR) is
SIGKILLed after its iteration-4 checkpoint (``model_0000004.pth``, PeriodicCheckpointer's
``model_{iteration:07d}`` naming) and after it has logged iteration 5, then restarted with
``--resume``. B's per-iteration metrics and final weights / optimizer state must equal A's.

To make the kill land deterministically between the checkpoint and the end of training on
a loaded machine, the killed run is started through a tiny wrapper that runs
``tools/train_net.py`` unchanged as ``__main__`` but sleeps before each step after the
fifth (``SSLTrainer.run_step`` wrapped); the resumed run is a plain ``train_net.py --resume``.
"""
import json
import os
import signal
import subprocess
import sys
import time

import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN_NET = os.path.join(REPO_ROOT, "tools", "train_net.py")
MAX_ITER, PERIOD = 8, 4

# Runs tools/train_net.py as __main__ with the given argv; steps with iter >= 5 sleep first.
_SLOW_WRAPPER = """
import runpy, sys, time
sys.path[:0] = [{tools!r}, {root!r}]  # as `python tools/train_net.py` would have it
from ssl_zoo.engine.trainer import SSLTrainer
_run_step = SSLTrainer.run_step
def run_step(self):
    if self.iter >= 5:
        time.sleep(0.3)
    return _run_step(self)
SSLTrainer.run_step = run_step
sys.argv = [{script!r}] + sys.argv[1:]
runpy.run_path({script!r}, run_name="__main__")
"""


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def _write_config(tiny_cfg, path):
    cfg = tiny_cfg.clone()
    cfg.merge_from_list([
        "SOLVER.MAX_ITER", MAX_ITER, "SOLVER.CHECKPOINT_PERIOD", PERIOD, "LOG.PERIOD", 1,
        "SOLVER.WARMUP_ITERS", 2, "SOLVER.BASE_LR", 2.0,
        # small heads: the subprocesses stay fast
        "BYOL.PROJECTOR_HIDDEN_DIM", 64, "BYOL.PROJECTOR_OUT_DIM", 32, "BYOL.PREDICTOR_HIDDEN_DIM", 64,
    ])
    with open(path, "w") as f:
        f.write(cfg.dump())
    return path


def _cmd(config, out, *extra, wrapper=False):
    head = [sys.executable, "-c", _SLOW_WRAPPER.format(root=REPO_ROOT, tools=os.path.dirname(TRAIN_NET), script=TRAIN_NET)] if wrapper \
        else [sys.executable, TRAIN_NET]
    return head + ["--config-file", config, *extra, "OUTPUT_DIR", out]


def _metrics(out):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def _losses(out):
    return [(r["iteration"], r["loss"]) for r in _metrics(out) if "loss" in r]


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def test_sigkill_and_resume_equals_uninterrupted(tiny_cfg, tmp_path):
    config = _write_config(tiny_cfg, str(tmp_path / "tiny.yaml"))
    out_a, out_b = str(tmp_path / "A"), str(tmp_path / "B")

    a = subprocess.run(_cmd(config, out_a), cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert a.returncode == 0, a.stderr[-3000:]
    losses_a = _losses(out_a)
    assert [i for i, _ in losses_a] == list(range(1, MAX_ITER + 1))
    assert os.path.isfile(os.path.join(out_a, f"model_{PERIOD:07d}.pth"))

    # ---- run B: killed after the iteration-4 checkpoint and after logging iteration 5
    log_b = open(tmp_path / "b_killed.log", "w")
    proc = subprocess.Popen(_cmd(config, out_b, wrapper=True), cwd=REPO_ROOT, env=_env(),
                            stdout=log_b, stderr=subprocess.STDOUT)
    ckpt = os.path.join(out_b, f"model_{PERIOD:07d}.pth")
    pointer = os.path.join(out_b, "last_checkpoint")
    deadline = time.time() + 90
    try:
        while time.time() < deadline and proc.poll() is None:
            if os.path.isfile(ckpt) and _read(pointer) == os.path.basename(ckpt) \
                    and os.path.isfile(os.path.join(out_b, "metrics.jsonl")) \
                    and any(i == PERIOD + 1 for i, _ in _losses(out_b)):
                break
            time.sleep(0.01)
        assert proc.poll() is None, "run B ended before it could be killed: " + _read(tmp_path / "b_killed.log")[-3000:]
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log_b.close()
    assert _read(pointer) == f"model_{PERIOD:07d}.pth"
    assert not os.path.exists(os.path.join(out_b, "model_final.pth"))
    killed_iters = [i for i, _ in _losses(out_b)]
    assert killed_iters[:PERIOD + 1] == list(range(1, PERIOD + 2)) and max(killed_iters) < MAX_ITER
    # the steps done before the kill already equal A's
    assert _losses(out_b) == losses_a[:len(killed_iters)]

    # ---- resume B to the end
    b = subprocess.run(_cmd(config, out_b, "--resume"), cwd=REPO_ROOT, env=_env(), capture_output=True, text=True,
                       timeout=120)
    assert b.returncode == 0, b.stderr[-3000:]
    log = b.stdout + b.stderr
    assert "model_0000004.pth" in log and f"starting at {PERIOD}" in log, log[-3000:]

    losses_b = _losses(out_b)
    assert [i for i, _ in losses_b] == list(range(1, MAX_ITER + 1))  # killed run's extra lines dropped
    for (_, la), (_, lb) in zip(losses_a, losses_b):
        assert abs(la - lb) <= 1e-6, (losses_a, losses_b)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "images_per_s"} for r in rows]  # noqa: E731
    assert strip(_metrics(out_b)) == strip(_metrics(out_a))  # lr, tau, collapse signal, ... too

    fa = torch.load(os.path.join(out_a, "model_final.pth"), map_location="cpu", weights_only=True)
    fb = torch.load(os.path.join(out_b, "model_final.pth"), map_location="cpu", weights_only=True)
    assert fa["iteration"] == fb["iteration"] == MAX_ITER
    assert fa["model"].keys() == fb["model"].keys()
    for k in fa["model"]:
        torch.testing.assert_close(fb["model"][k], fa["model"][k], rtol=0, atol=1e-6, msg=k)
    for sa, sb in zip(fa["optimizer"]["state"].values(), fb["optimizer"]["state"].values()):
        for k in sa:
            torch.testing.assert_close(sb[k], sa[k], rtol=0, atol=1e-6, msg=k)
