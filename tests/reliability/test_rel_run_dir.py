"""Run directories under faults (issue 13 items 1-3): --resume with a missing / dangling /
damaged last_checkpoint, a fresh run over an earlier one, two runs into one OUTPUT_DIR, a
failed --resume, orphan temp files. The real stack: ``tools/train_net.py``'s ``main`` through
``launch_cli`` in-process (fast), or as subprocesses where processes must compete."""
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from test_bad_input import SMALL_HEADS, _train_net, _yaml
from test_resume_e2e import _cmd, _env
from test_trainer import _hook_log_records

import train_net  # tools/train_net.py (tools/ is on sys.path, see tests/conftest.py)
from ssl_zoo.checkpoint import CheckpointError, RunDirLock, RunDirLockedError
from ssl_zoo.engine.defaults import build_trainer, claim_run_dir, default_argument_parser, launch_cli
from ssl_zoo.engine.metrics_file import read_metrics


def _config(tiny_cfg, tmp_path, max_iter=6, period=2):
    cfg = tiny_cfg.clone()
    cfg.merge_from_list(["OUTPUT_DIR", str(tmp_path / "run"), "SOLVER.MAX_ITER", max_iter,
                         "SOLVER.CHECKPOINT_PERIOD", period, "LOG.PERIOD", 1, *SMALL_HEADS])
    return cfg, _yaml(cfg, tmp_path / "tiny.yaml")


def _cli(capsys, config, *flags):
    """tools/train_net.py in this process: None on success, else its last stderr line (exit status 1)."""
    args = default_argument_parser().parse_args(["--config-file", config, *flags])
    capsys.readouterr()
    try:
        launch_cli(train_net.main, args, train_net.setup)
    except SystemExit as e:
        err = capsys.readouterr().err.strip().splitlines()
        line = e.code if isinstance(e.code, str) else err[-1]
        assert e.code == 1 or isinstance(e.code, str), e.code
        assert "Traceback" not in "\n".join(err)
        return line
    return None


def _pth(out):
    return sorted(f for f in os.listdir(out) if f.endswith(".pth"))


def test_resume_falls_back_to_newest_loadable_checkpoint_and_refuses_when_none(tiny_cfg, tmp_path, capsys):
    cfg, config = _config(tiny_cfg, tmp_path)
    out = cfg.OUTPUT_DIR
    assert _cli(capsys, config) is None
    assert _pth(out) == ["model_0000002.pth", "model_0000004.pth", "model_final.pth"]
    os.remove(os.path.join(out, "model_final.pth"))
    rows = read_metrics(out)
    pointer = os.path.join(out, "last_checkpoint")

    # 1. dangling pointer: before the fix this started from scratch and wiped metrics.jsonl
    with open(pointer, "w") as f:
        f.write("model_0000099.pth")
    with _hook_log_records(logging.WARNING, "ssl_zoo.checkpoint") as records:
        assert build_trainer(cfg, resume=True).start_iter == 4
    said = " ".join(r.getMessage() for r in records)
    assert "names 'model_0000099.pth', which does not exist" in said and "model_0000004.pth" in said
    # 2. no pointer at all
    os.remove(pointer)
    trainer = build_trainer(cfg, resume=True)
    assert trainer.start_iter == 4
    # 3. the newest file is empty (a killed save on an old version): the one before it
    open(os.path.join(out, "model_0000004.pth"), "wb").close()
    assert build_trainer(cfg, resume=True).start_iter == 2
    # metrics of the completed steps survive all this (nothing is rewritten until training starts)
    assert read_metrics(out) == rows
    # 4. nothing loads: refuse rather than silently start over
    with open(os.path.join(out, "model_0000002.pth"), "wb") as f:
        f.write(b"garbage" * 100)
    with pytest.raises(CheckpointError, match="no checkpoint in .* loads.*Refusing to start from scratch"):
        build_trainer(cfg, resume=True)


def test_fresh_run_over_existing_run_is_refused_and_failed_resume_keeps_config(tiny_cfg, tmp_path, capsys):
    cfg, config = _config(tiny_cfg, tmp_path, max_iter=2, period=1)
    out = cfg.OUTPUT_DIR
    assert _cli(capsys, config) is None
    before = {f: open(os.path.join(out, f), "rb").read() for f in _pth(out)}
    code = _cli(capsys, config)  # same command again, no flag
    assert code.startswith("error: OUTPUT_DIR") and "--resume" in code and "--overwrite" in code, code
    assert {f: open(os.path.join(out, f), "rb").read() for f in _pth(out)} == before  # untouched

    cfg_yaml = os.path.join(out, "config.yaml")
    with open(cfg_yaml, "a") as f:
        f.write("# the run's own config\n")
    kept = open(cfg_yaml).read()
    for f in _pth(out):
        open(os.path.join(out, f), "wb").close()  # every checkpoint damaged
    code = _cli(capsys, config, "--resume", "SOLVER.BASE_LR", "0.05")
    assert code.startswith("error: --resume: no checkpoint in") and "\n" not in code, code
    assert open(cfg_yaml).read() == kept  # a failed resume does not overwrite config.yaml

    assert _cli(capsys, config, "--overwrite") is None  # explicit: replaces the run
    assert _pth(out) == ["model_0000001.pth", "model_final.pth"]
    assert [r["iteration"] for r in read_metrics(out) if "loss" in r] == [1, 2]


_HOLD_LOCK = """
import sys, time
sys.path.insert(0, {root!r})
from ssl_zoo.checkpoint import RunDirLock
RunDirLock({out!r}).acquire()
print("locked", flush=True)
time.sleep(120)
"""


def test_run_dir_lock_refuses_live_holder_and_takes_over_from_dead_one(tmp_path):
    out = str(tmp_path / "run")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK.format(root=root, out=out)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirLockedError, match=f"in use by another training run .*pid={holder.pid}"):
            RunDirLock(out).acquire()
        holder.send_signal(signal.SIGKILL)  # dies without releasing anything: the lock file stays
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
    assert os.path.exists(os.path.join(out, ".lock"))
    lock = RunDirLock(out).acquire()  # a stale lock of a dead process is taken over
    assert f"pid={os.getpid()}" in open(os.path.join(out, ".lock")).read()
    lock.release()


def test_two_concurrent_runs_into_one_output_dir(tiny_cfg, tmp_path):
    """Before the fix both trained and tore metrics.jsonl; now the second one is refused."""
    cfg, config = _config(tiny_cfg, tmp_path, max_iter=200, period=10)  # stopped by SIGTERM long before
    # test_resume_e2e's wrapper: steps from the 6th on sleep 0.3 s, so the first run is still going
    first = subprocess.Popen(_cmd(config, cfg.OUTPUT_DIR, wrapper=True), env=_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    lock = os.path.join(cfg.OUTPUT_DIR, ".lock")
    deadline = time.time() + 60
    while time.time() < deadline and not (os.path.exists(lock) and open(lock).read()):
        time.sleep(0.05)
    second = _train_net("--config-file", config, timeout=120)
    assert first.poll() is None, "the first run ended before the second one started"
    first.send_signal(signal.SIGTERM)  # ...and a scheduler preempts the first: it saves and stops
    assert first.wait(timeout=60) == 128 + signal.SIGTERM
    assert second.returncode == 1
    lines = second.stderr.strip().splitlines()
    assert lines[-1].startswith("error: OUTPUT_DIR") and "in use by another training run" in lines[-1], lines[-3:]
    assert "Traceback" not in second.stderr
    note = first.stderr.read().strip().splitlines()[-1]
    stopped = int(note.split("after iteration ")[1].split(";")[0])
    assert note.startswith("stopped by SIGTERM") and f"model_{stopped:07d}.pth" in note, note
    assert [r["iteration"] for r in read_metrics(cfg.OUTPUT_DIR) if "loss" in r] == list(range(1, stopped + 1))
    assert open(os.path.join(cfg.OUTPUT_DIR, "last_checkpoint")).read() == f"model_{stopped:07d}.pth"


def test_orphan_temp_files_of_killed_writes_are_removed_on_next_start(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    orphans = [out / ".model_0000100.pth.k2j4_x1.tmp", out / ".metrics.jsonl.abc123.tmp"]
    for p in orphans:
        p.write_bytes(b"half")
    (out / "notes.tmp").write_text("not ours")  # only atomic_write's names are removed
    claim_run_dir(str(out), resume=True, overwrite=False)
    assert sorted(os.listdir(out)) == [".lock", "notes.tmp"]
    torch.save({}, out / "model_0000001.pth")
    with pytest.raises(ValueError, match="already holds a run"):
        claim_run_dir(str(out), resume=False, overwrite=False)


def test_metrics_are_written_before_the_checkpoint_of_the_same_step(tiny_cfg, tmp_path):
    """build_hooks' order, and a checkpoint-step write even when LOG.PERIOD does not fall on it:
    when model_0000003.pth is saved, metrics.jsonl already holds step 3 (a kill right after the
    checkpoint loses no line)."""
    from ssl_zoo.engine import hooks as H

    cfg, _ = _config(tiny_cfg, tmp_path, max_iter=4, period=3)
    cfg.merge_from_list(["LOG.PERIOD", 100])
    trainer = build_trainer(cfg)
    kinds = [type(h) for h in trainer.hooks]
    assert kinds.index(H.MetricsWriter) < kinds.index(H.PeriodicCheckpointer)
    checkpointer = trainer.hooks[kinds.index(H.PeriodicCheckpointer)].checkpointer
    on_disk, real_save = {}, checkpointer.save

    def save(name, **state):
        on_disk[name] = [r["iteration"] for r in read_metrics(cfg.OUTPUT_DIR) if "loss" in r]
        return real_save(name, **state)

    checkpointer.save = save
    trainer.train()
    assert on_disk == {"model_0000003": [3], "model_final": [3, 4]}
