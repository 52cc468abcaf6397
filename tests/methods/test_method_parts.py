"""Method-specific behaviour beyond the generic one-step test (tests/test_methods.py): MoCo's queue
update inside forward, BYOLUnified's reductions to BYOL, SimCLR v2's fine-tuning encoder."""
import copy

import pytest
import torch
import torch.nn.functional as F

from ssl_zoo.config import get_cfg
from ssl_zoo.modeling.backbones.build import build_backbone
from ssl_zoo.modeling.heads import MLP
from ssl_zoo.modeling.losses import InfoNCELoss
from ssl_zoo.modeling.losses.byol import BYOLLoss
from ssl_zoo.modeling.losses.unified import UnifiedLoss
from ssl_zoo.modeling.method import build_method
from ssl_zoo.solver.schedules import build_momentum_schedule
from ssl_zoo_methods.byol import BYOL
from ssl_zoo_methods.byol_unified import BYOLUnified
from ssl_zoo_methods.moco import MoCo

torch.set_num_threads(1)


def _backbone():
    return build_backbone("resnet10", base_width=4, cifar_stem=True)


def _views(b=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, 3, 16, 16, generator=g) for _ in range(2)]


@pytest.mark.parametrize("symmetric", [False, True])
def test_moco_forward_matches_infonce_and_enqueues_keys(symmetric):
    torch.manual_seed(0)
    bb = _backbone()
    model = MoCo(bb, MLP(bb.out_dim, 16, 8, hidden_bn=False), InfoNCELoss(0.2), build_momentum_schedule("constant", 0.999),
                 queue_size=10, symmetric=symmetric)
    views = _views()
    queue_before = model.queue.keys.clone()
    ref = copy.deepcopy(model)
    out = model(views)
    with torch.no_grad():
        q1 = ref.projector(ref.backbone(views[0]))
        k2 = F.normalize(ref.target_projector(ref.target_backbone(views[1])), dim=1)
        expected = InfoNCELoss(0.2)(q1, k2, queue_before)
        keys = [k2]
        if symmetric:
            q2 = ref.projector(ref.backbone(views[1]))
            k1 = F.normalize(ref.target_projector(ref.target_backbone(views[0])), dim=1)
            expected = expected + InfoNCELoss(0.2)(q2, k1, queue_before)
            keys.append(k1)
    assert float(out["loss"].detach()) == pytest.approx(float(expected), rel=1e-5)
    keys = torch.cat(keys)
    n = keys.shape[0]
    assert int(model.queue.ptr) == n % 10
    idx = torch.arange(n - min(n, 10), n) % 10
    torch.testing.assert_close(model.queue.keys[idx], keys[n - min(n, 10):], rtol=1e-5, atol=1e-6)
    assert out["embedding"].shape == (6, 8) and not out["embedding"].requires_grad
    model.eval()
    model(views)  # no enqueue outside training
    assert int(model.queue.ptr) == n % 10


def test_byol_unified_beta0_equals_byol():
    torch.manual_seed(0)
    bb = _backbone()
    byol = BYOL(bb, MLP(bb.out_dim, 16, 8), MLP(8, 16, 8), BYOLLoss(), build_momentum_schedule("cosine", 0.99))
    unified = BYOLUnified(copy.deepcopy(bb), MLP(bb.out_dim, 16, 8), MLP(8, 16, 8), loss=UnifiedLoss(0.1, 0.0),
                          momentum_schedule=build_momentum_schedule("cosine", 0.99))
    unified.load_state_dict(byol.state_dict())
    views = _views()
    a, b = byol(views), unified(views)
    assert float(a["loss"].detach()) == pytest.approx(float(b["loss"].detach()), rel=1e-6)
    a["loss"].backward()
    b["loss"].backward()
    for (n, p), (_, q) in zip(byol.named_parameters(), unified.named_parameters()):
        if p.requires_grad:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=n)


def test_byol_unified_without_predictor_and_target_is_simclr_shaped():
    bb = _backbone()
    model = BYOLUnified(bb, MLP(bb.out_dim, 16, 8), None, loss=UnifiedLoss(0.1, 1.0),
                        momentum_schedule=build_momentum_schedule("cosine", 0.99), use_target=False)
    assert not hasattr(model, "target_backbone") and model.after_step(0, 10) == {}
    assert all(p.requires_grad for p in model.parameters())
    out = model(_views())
    out["loss"].backward()
    # psi = z_theta carries gradient: every online parameter gets one
    assert all(p.grad is not None for p in model.parameters())


def test_simclr_v2_config_finetunes_from_first_projector_layer():
    cfg = get_cfg()
    cfg.merge_from_file("configs/simclr/r50_v2_800ep.yaml")
    cfg.merge_from_list(["MODEL.BACKBONE.NAME", "resnet10", "MODEL.BACKBONE.BASE_WIDTH", 4,
                         "MODEL.BACKBONE.CIFAR_STEM", True, "SIMCLR.PROJECTOR_HIDDEN_DIM", 32, "MODEL.SYNC_BN", False])
    model = build_method(cfg)
    assert len([m for m in model.projector if isinstance(m, torch.nn.Linear)]) == 3
    enc = model.finetune_encoder().eval()
    assert enc(torch.randn(2, 3, 16, 16)).shape == (2, 32)
