"""``MODEL.WEIGHTS`` warm start through ``build_trainer`` (issue #12 item 5).

In the official code the target (BYOL) / key encoder (MoCo, ``builder.py``: ``param_k.data.copy_(param_q.data)``)
is a copy of the online network at the start. Here the warm-start weights are loaded after
the method was built, so the copy must be re-made from the loaded weights.
"""
import torch

from ssl_zoo.engine.defaults import build_trainer
from ssl_zoo.modeling.method import build_method

torch.set_num_threads(1)
HEADS = {"BYOL": ["BYOL.PROJECTOR_HIDDEN_DIM", 32, "BYOL.PROJECTOR_OUT_DIM", 16, "BYOL.PREDICTOR_HIDDEN_DIM", 32],
         "MoCo": ["MOCO.PROJECTOR_HIDDEN_DIM", 32, "MOCO.PROJECTOR_OUT_DIM", 16, "MOCO.QUEUE_SIZE", 64]}


def _run(tiny_cfg, tmp_path, method):
    cfg = tiny_cfg.clone()
    cfg.merge_from_list(["MODEL.METHOD", method, "OUTPUT_DIR", str(tmp_path / "out"), *HEADS[method]])
    torch.manual_seed(123)
    donor = build_method(cfg).backbone
    with torch.no_grad():  # distinctive values, BN statistics included
        for t in donor.state_dict().values():
            if t.is_floating_point():
                t.add_(0.5)
    path = tmp_path / "warm.pth"
    torch.save(donor.state_dict(), path)
    cfg.merge_from_list(["MODEL.WEIGHTS", str(path)])
    torch.manual_seed(0)
    model = build_trainer(cfg).model
    model = getattr(model, "module", model)
    want = donor.state_dict()
    for name, net in (("online", model.backbone), ("target", model.target_backbone)):
        got = net.state_dict()
        assert set(got) == set(want)
        for k in want:
            assert torch.equal(got[k], want[k]), f"{method} {name} {k} not the loaded weights"
    # The copy is a copy: the target has its own tensors, frozen.
    assert all(not p.requires_grad for p in model.target_backbone.parameters())
    assert model.target_backbone.conv1.weight.data_ptr() != model.backbone.conv1.weight.data_ptr()


def test_byol_target_starts_from_loaded_weights(tiny_cfg, tmp_path):
    _run(tiny_cfg, tmp_path, "BYOL")


def test_moco_key_encoder_starts_from_loaded_weights(tiny_cfg, tmp_path):
    _run(tiny_cfg, tmp_path, "MoCo")
