"""Bad inputs through the real stack (``build_trainer`` in-process, ``tools/train_net.py`` in
subprocesses): each must fail early with an actionable message, and a NaN must not corrupt
the checkpoints written before it."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from ssl_zoo.checkpoint import Checkpointer
from ssl_zoo.engine.defaults import build_trainer
from ssl_zoo.engine.hook_base import HookBase
from ssl_zoo.modeling.method import build_method
from ssl_zoo.solver.build import build_optimizer

torch.set_num_threads(1)
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN_NET = os.path.join(REPO_ROOT, "tools", "train_net.py")
SMALL_HEADS = ["BYOL.PROJECTOR_HIDDEN_DIM", 64, "BYOL.PROJECTOR_OUT_DIM", 32, "BYOL.PREDICTOR_HIDDEN_DIM", 64]


def _train_net(*args, timeout=120):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.run([sys.executable, TRAIN_NET, *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _cfg(tiny_cfg, tmp_path, *overrides):
    cfg = tiny_cfg.clone()
    cfg.merge_from_list(["OUTPUT_DIR", str(tmp_path / "out"), *SMALL_HEADS, *overrides])
    return cfg


def _yaml(cfg, path):
    with open(path, "w") as f:
        f.write(cfg.dump())
    return str(path)


# ---------------------------------------------------------------------------- data
def test_missing_dataset_path_names_the_path(tiny_cfg, tmp_path):
    cfg = _cfg(tiny_cfg, tmp_path, "DATASETS.TRAIN", "/nonexistent/dir")
    with pytest.raises(FileNotFoundError, match=re.escape("/nonexistent/dir")):
        build_trainer(cfg)


def test_unreadable_image_fails_naming_the_file(tiny_cfg, tmp_path):
    root = tmp_path / "folder"
    rng = np.random.default_rng(0)
    for i in range(7):  # 7 good images in 2 classes + 1 broken one = one batch of 8
        d = root / ("cat" if i % 2 else "dog")
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(d / f"img{i}.png")
    broken = root / "dog" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    cfg = _cfg(tiny_cfg, tmp_path, "DATASETS.TRAIN", str(root), "SOLVER.IMS_PER_BATCH", 8,
               "DATASETS.CORRUPT_POLICY", "fail")
    trainer = build_trainer(cfg)  # the folder itself is fine; the file fails when it is read
    assert len(trainer.data.dataset) == 8
    with pytest.raises(Exception) as info:
        trainer.train()
    assert str(broken) in str(info.value), repr(info.value)
    assert type(info.value).__name__ == "UnreadableImageError"
    assert not os.path.exists(tmp_path / "out" / "model_final.pth")


# ---------------------------------------------------------------------------- command line
def test_unknown_key_on_command_line_fails_before_training(tiny_cfg, tmp_path):
    out = tmp_path / "never_created"
    config = _yaml(_cfg(tiny_cfg, tmp_path), tmp_path / "tiny.yaml")
    proc = _train_net("--config-file", config, "OUTPUT_DIR", str(out), "SOLVER.BASE_RL", "0.1", timeout=60)
    assert proc.returncode != 0
    assert "SOLVER.BASE_RL" in proc.stderr and "SOLVER.BASE_LR" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr  # a one-line error, not a crash
    assert not out.exists()  # nothing ran: no output directory, no log, no checkpoint


def test_print_config_shows_paper_values():
    proc = _train_net("--config-file", os.path.join(REPO_ROOT, "configs", "byol", "r50_1000ep.yaml"),
                      "--print-config", timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for text in ("BASE_LR: 0.2", "TAU_BASE: 0.996", "WEIGHT_DECAY: 1.5e-06", "IMS_PER_BATCH: 4096"):
        assert text in proc.stdout, text
    cfg = yaml.safe_load(proc.stdout)  # the printed config is valid YAML with the paper recipe
    assert cfg["SOLVER"]["BASE_LR"] == 0.2 and cfg["SOLVER"]["WEIGHT_DECAY"] == 1.5e-6
    assert cfg["SOLVER"]["IMS_PER_BATCH"] == 4096 and cfg["BYOL"]["TAU_BASE"] == 0.996
    assert cfg["SOLVER"]["EPOCHS"] == 1000 and cfg["SOLVER"]["OPTIMIZER"] == "LARS"


# ---------------------------------------------------------------------------- NaN
class _Snapshot(HookBase):
    """Copies the model / optimizer state after every completed step."""

    def __init__(self):
        self.states = {}

    def after_step(self):
        t = self.trainer
        self.states[t.completed_steps] = {k: v.detach().clone() for k, v in t.unwrapped_model.state_dict().items()}


def test_nan_loss_stops_with_iteration_and_keeps_last_good_checkpoint(tiny_cfg, tmp_path):
    """A NaN image batch at step 3 (0-based): FloatingPointError naming iteration 3; the
    iteration-2 checkpoint is the exact state after step 2, loads strictly, and resumes."""
    cfg = _cfg(tiny_cfg, tmp_path, "SOLVER.MAX_ITER", 6, "SOLVER.CHECKPOINT_PERIOD", 2, "LOG.PERIOD", 1)
    out = cfg.OUTPUT_DIR
    torch.manual_seed(0)
    trainer = build_trainer(cfg)
    snap = _Snapshot()
    trainer.register_hooks([snap])
    transform = trainer.data.batch_transform

    def poisoned(batch, index):
        views, labels = transform(batch, index)
        if index == 3:
            views = [v.clone() for v in views]
            views[0][0, 0, 0, 0] = float("nan")  # one corrupt pixel is enough to poison BN and the loss
        return views, labels

    trainer.data.batch_transform = poisoned
    with pytest.raises(FloatingPointError, match=r"iteration=3\b"):
        trainer.train()
    assert trainer.completed_steps == 3  # step 3 never reached the optimizer
    files = sorted(f for f in os.listdir(out) if f.endswith(".pth"))
    assert files == ["model_0000002.pth"], files  # no checkpoint of anything after the NaN
    with open(os.path.join(out, "last_checkpoint")) as f:
        assert f.read().strip() == "model_0000002.pth"

    model = build_method(cfg)
    ckpt = Checkpointer(out, model, build_optimizer(cfg, model))
    extra = ckpt.load(os.path.join(out, "model_0000002.pth"), strict=True)
    assert extra["iteration"] == 2
    state = model.state_dict()
    assert state.keys() == snap.states[2].keys()
    for k, v in snap.states[2].items():
        assert torch.equal(state[k], v), k
        if v.is_floating_point():
            assert torch.isfinite(v).all(), k

    resumed = build_trainer(cfg, resume=True)  # the good checkpoint resumes to the end
    assert resumed.start_iter == 2
    resumed.train()
    losses = resumed.storage.history("loss")
    assert [i for i, _ in losses] == [3, 4, 5, 6] and all(np.isfinite(v) for _, v in losses)
    assert os.path.isfile(os.path.join(out, "model_final.pth"))


def test_nan_from_huge_lr_in_real_cli(tiny_cfg, tmp_path):
    """SOLVER.BASE_LR 1e30 through tools/train_net.py: step 0 has lr 0 (warm-up), step 1 blows
    the weights up, step 2's loss is NaN. The process fails with one error line naming
    iteration 2 and the last SANE checkpoint: the exploded state after step 2 was not saved
    (issue 13, "NaN poisons the last checkpoint"), so model_0000001.pth is the only one and loads."""
    cfg = _cfg(tiny_cfg, tmp_path, "SOLVER.MAX_ITER", 6, "SOLVER.WARMUP_ITERS", 3, "SOLVER.BASE_LR", 1e30,
               "SOLVER.CHECKPOINT_PERIOD", 1, "LOG.PERIOD", 1)
    out = cfg.OUTPUT_DIR
    proc = _train_net("--config-file", _yaml(cfg, tmp_path / "nan.yaml"))
    assert proc.returncode != 0
    err = proc.stderr.strip().splitlines()
    assert err[-1].startswith("error: Loss became infinite or NaN at iteration=2"), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    files = sorted(f for f in os.listdir(out) if f.endswith(".pth"))
    assert files == ["model_0000001.pth"], files
    assert f"The last sane checkpoint is {os.path.join(out, 'model_0000001.pth')}" in err[-1]
    with open(os.path.join(out, "last_checkpoint")) as f:
        assert f.read().strip() == "model_0000001.pth"
    model = build_method(cfg)
    extra = Checkpointer(out, model, build_optimizer(cfg, model)).load(os.path.join(out, "model_0000001.pth"), strict=True)
    assert extra["iteration"] == 1
    assert all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point())
