"""Multi-process faults on CPU / gloo (issue 13 "frozen or killed worker"): a frozen rank makes
the others fail after --dist-timeout with one line naming the rank and the timeout, and
workers do not outlive a killed launcher."""
import os
import signal
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_FROZEN_RANK = """
import sys, time
sys.path.insert(0, {root!r})
import torch, torch.distributed as dist
from ssl_zoo.engine.defaults import default_argument_parser, launch_cli

def main(args):
    if dist.get_rank() == 1:
        time.sleep(600)  # frozen
    dist.all_reduce(torch.ones(1))

if __name__ == "__main__":
    args = default_argument_parser().parse_args(sys.argv[1:])
    launch_cli(main, args, lambda a: None)
"""

_ORPHANS = """
import os, signal, sys, time
sys.path.insert(0, {root!r})
from ssl_zoo.engine.launch import launch

def worker(out):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as if stuck where PDEATHSIG's SIGINT is not acted on
    with open(os.path.join(out, f"{{os.getpid()}}.pid"), "w") as f:
        f.write("ok")
    time.sleep(600)

if __name__ == "__main__":
    launch(worker, 2, args=(sys.argv[1],), orphan_grace_s=1.0)
"""


_PREEMPTED = """
import sys, time
sys.path[:0] = [{root!r}, {tests!r}]
import torch
torch.set_num_threads(1)
from test_trainer import build_toy_trainer
from ssl_zoo.engine.defaults import default_argument_parser, launch_cli
from ssl_zoo.engine.hook_base import HookBase

class Slow(HookBase):
    def after_step(self):
        time.sleep(0.2)

def main(args):
    build_toy_trainer({out!r}, extra_hooks=[Slow()]).train()

if __name__ == "__main__":
    launch_cli(main, default_argument_parser().parse_args(sys.argv[1:]), lambda a: None)
"""


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie (not yet reaped by init) counts as gone
        return f.read().split(")")[-1].split()[0] != "Z"


def test_frozen_rank_times_out_with_one_line_naming_rank_and_timeout(tmp_path):
    script = tmp_path / "frozen.py"
    script.write_text(_FROZEN_RANK.format(root=REPO_ROOT))
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, str(script), "--num-gpus", "2", "--dist-timeout", "3"], capture_output=True,
                          text=True, timeout=240, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 1, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert errors[0].startswith("error: rank 0 of 2: a collective operation did not complete within 3 s "
                                "(--dist-timeout)"), errors
    assert time.monotonic() - t0 < 200  # not torch's 30 minutes


def test_workers_exit_when_the_launcher_is_killed(tmp_path):
    script = tmp_path / "orphans.py"
    script.write_text(_ORPHANS.format(root=REPO_ROOT))
    out = tmp_path / "pids"
    out.mkdir()
    launcher = subprocess.Popen([sys.executable, str(script), str(out)], env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(os.listdir(out)) < 2:
            time.sleep(0.1)
        pids = [int(f.split(".")[0]) for f in os.listdir(out)]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        launcher.send_signal(signal.SIGKILL)
        launcher.wait(timeout=30)
        deadline = time.time() + 30
        while time.time() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.1)
        assert not any(_alive(p) for p in pids), "workers outlived their launcher"
    finally:
        for f in os.listdir(out):
            try:
                os.kill(int(f.split(".")[0]), signal.SIGKILL)
            except ProcessLookupError:
                pass
        if launcher.poll() is None:
            launcher.kill()


def test_sigterm_to_the_launcher_stops_every_rank_at_one_step_with_a_checkpoint(tmp_path):
    """The scheduler signals only the launcher: it forwards, the ranks agree on the step, rank 0
    saves, every process exits 128 + SIGTERM with one note (no hang, no traceback)."""
    from ssl_zoo.engine.metrics_file import read_metrics

    out = str(tmp_path / "run")
    script = tmp_path / "preempted.py"
    script.write_text(_PREEMPTED.format(root=REPO_ROOT, tests=os.path.join(REPO_ROOT, "tests", "engine"), out=out))
    proc = subprocess.Popen([sys.executable, str(script), "--num-gpus", "2"], stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        deadline = time.time() + 180
        while time.time() < deadline and len([r for r in read_metrics(out) if "loss" in r]) < 3:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = proc.stderr.read().strip().splitlines()
    assert lines[-1].startswith("stopped by SIGTERM after iteration ") and "Traceback" not in "\n".join(lines), lines[-5:]
    stopped = int(lines[-1].split("after iteration ")[1].split(";")[0])
    assert f"model_{stopped:07d}.pth" in lines[-1]
    assert open(os.path.join(out, "last_checkpoint")).read() == f"model_{stopped:07d}.pth"
