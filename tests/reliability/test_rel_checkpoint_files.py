"""Checkpoint files under faults: empty, damaged, code-running, full disk, permissions,
non-finite / exploding states, retention (issue 13 items 1, 4, "unclear errors", 0600)."""
import errno
import os
import stat

import pytest
import torch
from test_trainer import build_toy_trainer

from ssl_zoo.checkpoint import CheckpointError, Checkpointer, DiskFullError, UnsafeCheckpointError, load_file
from ssl_zoo.checkpoint.periodic import PeriodicCheckpointer


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))


def test_empty_damaged_and_code_running_files_each_get_their_own_message(tmp_path):
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.pth' is empty \(0 bytes\)"):
        load_file(str(empty))
    good = tmp_path / "good.pth"
    torch.save({"model": _model().state_dict()}, good)
    torn = tmp_path / "torn.pth"
    torn.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"torn\.pth' is damaged or truncated"):
        load_file(str(torn))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match=r"garbage\.pth' is damaged or not a PyTorch file"):
        load_file(str(garbage))
    evil = tmp_path / "evil.pth"
    torch.save({"model": _RunsCode()}, evil)
    with pytest.raises(UnsafeCheckpointError, match=r"evil\.pth': it needs full unpickling.*GLOBAL"):
        load_file(str(evil))
    # the damaged ones are NOT called "needs full unpickling" (the misleading message)
    for bad in (torn, garbage):
        with pytest.raises(CheckpointError) as info:
            load_file(str(bad))
        assert "unpickling" not in str(info.value)


def test_checkpoints_are_world_readable_like_other_outputs(tmp_path):
    old = os.umask(0o022)
    try:
        Checkpointer(str(tmp_path), _model()).save("model_0000001", iteration=1)
    finally:
        os.umask(old)
    for name in ("model_0000001.pth", "last_checkpoint"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644, name


def test_disk_full_is_a_clear_error_and_loses_nothing(tmp_path, monkeypatch):
    model = _model()
    ckpt = Checkpointer(str(tmp_path), model)
    ckpt.save("model_0000001", iteration=1)
    before = (tmp_path / "model_0000001.pth").read_bytes()

    def full_disk(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(DiskFullError, match="no space left.*nothing was lost.*--resume"):
        ckpt.save("model_0000002", iteration=2)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000001.pth"]  # no temp file left
    assert (tmp_path / "model_0000001.pth").read_bytes() == before
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"


def test_exploding_or_nonfinite_state_is_not_saved_and_pointer_stays(tmp_path, caplog):
    model = _model()
    ckpt = Checkpointer(str(tmp_path), model, max_abs=1e6)
    assert ckpt.save("model_0000001", iteration=1, loss=0.5)
    with torch.no_grad():
        model[0].weight[0, 0] = 7.5e28  # the poisoned value
    assert ckpt.save("model_0000002", iteration=2, loss=0.4) is None
    assert "7.5e+28" in caplog.text and "'0.weight'" in caplog.text and "model_0000001.pth" in caplog.text
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    assert ckpt.save("model_0000003", iteration=3) is None
    with torch.no_grad():
        model[0].weight[0, 0] = 0.0
    assert ckpt.save("model_0000004", iteration=4, loss=float("inf")) is None  # finite weights, infinite loss
    assert sorted(f for f in os.listdir(tmp_path) if f.endswith(".pth")) == ["model_0000001.pth"]
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"
    assert ckpt.last_good == str(tmp_path / "model_0000001.pth")


def test_divergence_error_names_the_last_sane_checkpoint(tmp_path):
    """NaN at step 7 with checkpoints every 5 steps: the error points at model_0000005.pth."""
    trainer = build_toy_trainer(str(tmp_path), nan_at_index=7)
    with pytest.raises(FloatingPointError, match=r"last sane checkpoint is .*model_0000005\.pth"):
        trainer.train()


def test_max_to_keep_prunes_old_checkpoints_across_resumes(tmp_path):
    model = _model()
    ckpt = Checkpointer(str(tmp_path), model)
    periodic = PeriodicCheckpointer(ckpt, period=2, max_iter=20, max_to_keep=3)
    for n in range(1, 11):  # a first session: steps 1..10
        periodic.step(n)
    names = lambda: sorted(f for f in os.listdir(tmp_path) if f.endswith(".pth"))  # noqa: E731
    assert names() == ["model_0000006.pth", "model_0000008.pth", "model_0000010.pth"]
    # a resumed session (fresh objects, empty in-memory list) still prunes the earlier files
    periodic = PeriodicCheckpointer(Checkpointer(str(tmp_path), model), period=2, max_iter=20, max_to_keep=3)
    for n in range(11, 21):
        periodic.step(n)
    assert names() == ["model_0000014.pth", "model_0000016.pth", "model_0000018.pth", "model_final.pth"]
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.pth"
    keep_all = PeriodicCheckpointer(Checkpointer(str(tmp_path / "all"), model), period=1, max_iter=9, max_to_keep=0)
    for n in range(1, 6):
        keep_all.step(n)
    assert len(os.listdir(tmp_path / "all")) == 6  # 5 checkpoints + pointer
