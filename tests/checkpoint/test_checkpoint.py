"""Checkpointer: round trip, prefix stripping, RNG restore, atomicity under a crash."""
import os
import random

import numpy as np
import pytest
import torch
from torch import nn

from ssl_zoo.checkpoint import Checkpointer, strip_prefixes

torch.set_num_threads(1)


def _model_and_opt(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(5, 4)).sum().backward()
    opt.step()  # momentum buffers exist
    return model, opt


def _same_state(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_round_trip_with_optimizer_extra_state_and_rng(tmp_path):
    model, opt = _model_and_opt(0)
    ckpt = Checkpointer(str(tmp_path), model, opt)
    assert not ckpt.has_checkpoint() and ckpt.resume_or_load("", resume=True) == {}
    path = ckpt.save("model_0000005", iteration=5, hooks={"KNNMonitor": {"history": [{"iteration": 0, "acc": 1.5}]}})
    assert open(tmp_path / "last_checkpoint").read() == "model_0000005.pth"
    # everything is loadable without arbitrary unpickling
    raw = torch.load(path, weights_only=True)
    assert not any(k.startswith("module.") for k in raw["model"])
    after = (torch.rand(3), np.random.rand(3), random.random())

    model2, opt2 = _model_and_opt(1)
    ckpt2 = Checkpointer(str(tmp_path), model2, opt2)
    assert ckpt2.has_checkpoint()
    extra = ckpt2.resume_or_load("", resume=True)
    assert extra["iteration"] == 5 and extra["hooks"]["KNNMonitor"]["history"][0]["acc"] == 1.5
    assert _same_state(model, model2)
    m1, m2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert all(torch.equal(m1[i]["momentum_buffer"], m2[i]["momentum_buffer"]) for i in m1)
    # RNG streams continue exactly as after the save
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(after[0], again[0]) and np.array_equal(after[1], again[1]) and after[2] == again[2]


def test_wrapped_model_saved_without_prefix_and_prefixed_file_loads(tmp_path):
    model, _ = _model_and_opt(0)
    Checkpointer(str(tmp_path), nn.DataParallel(model)).save("a")  # DataParallel wraps as .module
    keys = torch.load(tmp_path / "a.pth", weights_only=True)["model"].keys()
    assert keys == model.state_dict().keys()
    # a bare state dict with "module." prefixes (e.g. saved from a DDP model) loads too
    torch.save({"module." + k: v for k, v in model.state_dict().items()}, tmp_path / "ddp.pth")
    other, _ = _model_and_opt(3)
    Checkpointer(str(tmp_path), other).load(str(tmp_path / "ddp.pth"))
    assert _same_state(model, other)
    assert strip_prefixes({"module._orig_mod.w": 1}) == {"w": 1}


def test_crash_during_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    model, opt = _model_and_opt(0)
    ckpt = Checkpointer(str(tmp_path), model, opt)
    ckpt.save("model_0000005", iteration=5)
    good = (tmp_path / "model_0000005.pth").read_bytes()

    def crashing_save(obj, f, *a, **k):
        f.write(b"half a checkpoint")  # partial bytes, then the "crash"
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crashing_save)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save("model_0000010", iteration=10)
    with pytest.raises(OSError):  # the same name as an existing checkpoint: it stays intact
        ckpt.save("model_0000005", iteration=10)
    monkeypatch.undo()

    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000005.pth"]  # no temp file, no torn file
    assert (tmp_path / "model_0000005.pth").read_bytes() == good
    fresh, _ = _model_and_opt(2)
    extra = Checkpointer(str(tmp_path), fresh).resume_or_load("", resume=True)
    assert extra["iteration"] == 5


def test_load_initialisation_is_non_strict(tmp_path):
    model, _ = _model_and_opt(0)
    torch.save({"model": {"0.weight": model[0].weight.detach().clone() + 1, "fc.weight": torch.zeros(1)}},
               tmp_path / "init.pth")
    ckpt = Checkpointer(str(tmp_path / "out"), model)
    assert ckpt.resume_or_load(str(tmp_path / "init.pth"), resume=False) == {}
    with pytest.raises(RuntimeError):  # resuming from it (strict) refuses the mismatch
        ckpt.load(str(tmp_path / "init.pth"))
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        ckpt.load(str(tmp_path / "nope.pth"))


class _RunsCode:
    def __reduce__(self):
        import os
        return (os.system, ("echo pwned > /dev/null",))


def test_load_file_refuses_code_running_pickles(tmp_path):
    import pickle

    import pytest

    from ssl_zoo.checkpoint.checkpointer import load_file

    bad = tmp_path / "evil.pth"
    torch.save({"model": _RunsCode()}, bad)
    with pytest.raises(pickle.UnpicklingError, match="evil.pth"):
        load_file(str(bad))
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_file(str(tmp_path / "missing.pth"))
