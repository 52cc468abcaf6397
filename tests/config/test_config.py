"""Config system: every shipped YAML composes and builds; paper values; actionable errors."""
import glob
import os

import pytest
import torch

from ssl_zoo.config import ConfigError, get_cfg
from ssl_zoo.modeling.method import build_method

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "**", "*.yaml"), recursive=True))


def test_configs_exist():
    assert any(p.endswith("byol/r50_1000ep.yaml") for p in CONFIGS)
    assert any(p.endswith("byol/quickstart.yaml") for p in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, REPO))
def test_every_config_loads_and_builds(path):
    from ssl_zoo.config import load_config

    cfg = load_config(path)  # as tools/train_net.py loads it
    # Build on the meta device: checks every module is constructible without allocating R200 2x.
    with torch.device("meta"):
        model = build_method(cfg)
    assert sum(p.numel() for p in model.parameters()) > 0


def test_r50_1000ep_is_the_paper_recipe():
    """PROTOCOLS.md s.2, number by number."""
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(REPO, "configs/byol/r50_1000ep.yaml"))
    assert cfg.MODEL.METHOD == "BYOL" and cfg.MODEL.BACKBONE.NAME == "resnet50"
    assert (cfg.BYOL.PROJECTOR_HIDDEN_DIM, cfg.BYOL.PROJECTOR_OUT_DIM, cfg.BYOL.PREDICTOR_HIDDEN_DIM) == (4096, 256, 4096)
    assert cfg.BYOL.TAU_BASE == 0.996 and cfg.BYOL.TAU_SCHEDULE == "cosine"
    assert cfg.SOLVER.OPTIMIZER == "LARS" and cfg.SOLVER.MOMENTUM == 0.9 and cfg.SOLVER.LARS_ETA == 1e-3
    assert cfg.SOLVER.EXCLUDE_BIAS_AND_NORM
    assert cfg.SOLVER.BASE_LR == 0.2 and cfg.SOLVER.REFERENCE_BATCH_SIZE == 256 and cfg.SOLVER.LR_SCALING == "linear"
    assert cfg.SOLVER.WARMUP_EPOCHS == 10 and cfg.SOLVER.LR_SCHEDULER == "warmup_cosine"
    assert cfg.SOLVER.WEIGHT_DECAY == 1.5e-6 and cfg.SOLVER.IMS_PER_BATCH == 4096 and cfg.SOLVER.EPOCHS == 1000
    assert cfg.MODEL.BN.MOMENTUM == pytest.approx(0.1) and cfg.MODEL.BN.EPS == 1e-5  # decay 0.9
    assert cfg.INPUT.AUG_PRESET == "byol" and cfg.SEED == 0


@pytest.mark.parametrize("name,lr,wd,tau", [("r50_40ep", 0.45, 1e-6, 0.97), ("r50_100ep", 0.45, 1e-6, 0.99),
                                            ("r50_300ep", 0.3, 1e-6, 0.99)])
def test_shorter_presets(name, lr, wd, tau):
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(REPO, f"configs/byol/{name}.yaml"))
    assert (cfg.SOLVER.BASE_LR, cfg.SOLVER.WEIGHT_DECAY, cfg.BYOL.TAU_BASE) == (lr, wd, tau)


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_base_inheritance_and_overrides(tmp_path):
    _write(tmp_path, "base.yaml", "SOLVER:\n  BASE_LR: 0.5\n  EPOCHS: 7\n")
    leaf = _write(tmp_path, "leaf.yaml", "_BASE_: base.yaml\nSOLVER:\n  EPOCHS: 9\n")
    cfg = get_cfg()
    cfg.merge_from_file(leaf)
    assert cfg.SOLVER.BASE_LR == 0.5 and cfg.SOLVER.EPOCHS == 9
    cfg.merge_from_list(["SOLVER.EPOCHS", "11", "BYOL.TAU_BASE", "0.9"])
    assert cfg.SOLVER.EPOCHS == 11 and cfg.BYOL.TAU_BASE == 0.9


def test_unknown_key_names_file_key_and_suggestion(tmp_path):
    bad = _write(tmp_path, "bad.yaml", "SOLVER:\n  BASE_RL: 0.5\n")
    with pytest.raises(ConfigError) as e:
        get_cfg().merge_from_file(bad)
    msg = str(e.value)
    assert "bad.yaml" in msg and "SOLVER.BASE_RL" in msg and "SOLVER.BASE_LR" in msg


def test_unknown_override_suggests(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key 'BYOL.TAU_BASEE'. Did you mean 'BYOL.TAU_BASE'\?"):
        get_cfg().merge_from_list(["BYOL.TAU_BASEE", "0.9"])


def test_wrong_type_names_key(tmp_path):
    bad = _write(tmp_path, "bad.yaml", "SOLVER:\n  EPOCHS: 'many'\n")
    with pytest.raises(ConfigError) as e:
        get_cfg().merge_from_file(bad)
    assert "SOLVER.EPOCHS" in str(e.value) and "bad.yaml" in str(e.value)


def test_missing_file_and_odd_overrides():
    with pytest.raises(ConfigError, match="nope.yaml"):
        get_cfg().merge_from_file("nope.yaml")
    with pytest.raises(ConfigError, match="KEY VALUE"):
        get_cfg().merge_from_list(["SOLVER.EPOCHS"])


def test_load_config_keeps_only_the_chosen_methods_keys(tmp_path):
    from ssl_zoo.config import load_config

    cfg = load_config(os.path.join(REPO, "configs/byol/r50_1000ep.yaml"), ["SOLVER.EPOCHS", "3"])
    assert "BYOL" in cfg and "MOCO" not in cfg and "SIMCLR" not in cfg
    assert cfg.SOLVER.EPOCHS == 3 and cfg.BYOL.TAU_BASE == 0.996
    # a key of another method is an error for this method
    with pytest.raises(ConfigError, match="MOCO"):
        load_config(os.path.join(REPO, "configs/byol/r50_1000ep.yaml"), ["MOCO.TAU_BASE", "0.9"])
