"""Detection schedule (MoCo's VOC config), optimizer groups, precise BN, flips, and the detectron2 export."""
import pickle
import re

import pytest
import torch
from torch import nn

from ssl_zoo.benchmark.detection.data import to_tensor_and_flip
from ssl_zoo.benchmark.detection.train import Schedule, build_optimizer, lr_at, precise_bn, schedule_from_cfg
from ssl_zoo.config import get_cfg
from ssl_zoo.model_zoo.export import detectron2_key, export_detectron2
from ssl_zoo.modeling.backbones.build import build_backbone


def test_protocol_schedule_and_budget():
    cfg = get_cfg()
    s = schedule_from_cfg(cfg)
    assert (s.base_lr, s.max_iter, s.steps, s.warmup_iters, s.budget) == (0.02, 24000, (18000, 22000), 100, "")
    # detectron2 WarmupMultiStepLR: linear from 0.001 x lr over 100 iterations, then x0.1 at each step
    assert lr_at(s, 0) == pytest.approx(0.02 * 0.001)
    assert lr_at(s, 50) == pytest.approx(0.02 * (0.001 * 0.5 + 0.5))
    assert lr_at(s, 100) == lr_at(s, 17999) == pytest.approx(0.02)
    assert lr_at(s, 18000) == pytest.approx(0.002) and lr_at(s, 22000) == pytest.approx(0.0002)
    cfg.BENCHMARK.DETECTION.BUDGET_ITERS = 240
    b = schedule_from_cfg(cfg)
    assert (b.max_iter, b.steps, b.warmup_iters) == (240, (180, 220), 24) and "240 of 24000" in b.budget
    cfg.BENCHMARK.DETECTION.STEPS = (30000,)
    with pytest.raises(ValueError, match="STEPS"):
        schedule_from_cfg(cfg)


def test_optimizer_no_weight_decay_on_bn():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))
    opt = build_optimizer(model, 0.02, 0.9, 1e-4, 0.0)
    decay = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert decay[id(model[1].weight)] == decay[id(model[1].bias)] == 0.0
    assert decay[id(model[0].weight)] == decay[id(model[2].bias)] == 1e-4


class _Toy(nn.Module):
    """A detection-style model: (images, targets) in training mode."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(2, momentum=0.1)

    def forward(self, images, targets=None):
        assert self.training and targets is not None
        return {"loss": self.bn(torch.stack(images)).sum()}


def test_precise_bn_is_the_average_of_batch_statistics():
    torch.manual_seed(0)
    batches = [[torch.randn(2, 3, 3) * (k + 1) + k for _ in range(4)] for k in range(3)]
    model = _Toy().eval()
    n = precise_bn(model, ((b, [{}] * 4) for b in batches), num_iters=3, device=torch.device("cpu"))
    assert n == 3 and not model.training and model.bn.momentum == 0.1
    means = torch.stack([torch.stack(b).mean(dim=(0, 2, 3)) for b in batches])
    var = torch.stack([torch.stack(b).transpose(0, 1).reshape(2, -1).var(dim=1) for b in batches])  # unbiased
    assert torch.allclose(model.bn.running_mean, means.mean(0), atol=1e-6)
    assert torch.allclose(model.bn.running_var, var.mean(0), atol=1e-5)


def test_flip_mirrors_boxes():
    from PIL import Image

    img = Image.new("RGB", (20, 10))
    target = {"boxes": torch.tensor([[2.0, 1.0, 5.0, 9.0]]), "labels": torch.tensor([1])}
    t, out = to_tensor_and_flip(1.0)(img, target)
    assert t.shape == (3, 10, 20) and out["boxes"].tolist() == [[15.0, 1.0, 18.0, 9.0]]
    assert target["boxes"].tolist() == [[2.0, 1.0, 5.0, 9.0]]  # input untouched
    assert to_tensor_and_flip(0.0)(img, target)[1]["boxes"].tolist() == [[2.0, 1.0, 5.0, 9.0]]


# Renaming rules of MoCo's detection/convert-pretrain-to-detectron2.py, written out by hand.
EXPECTED = {
    "conv1.weight": "stem.conv1.weight",
    "bn1.running_mean": "stem.conv1.norm.running_mean",
    "layer1.0.conv2.weight": "res2.0.conv2.weight",
    "layer1.0.bn3.bias": "res2.0.conv3.norm.bias",
    "layer1.0.downsample.0.weight": "res2.0.shortcut.weight",
    "layer3.0.downsample.1.running_var": "res4.0.shortcut.norm.running_var",
    "layer4.2.bn1.weight": "res5.2.conv1.norm.weight",
}
D2_NAME = re.compile(r"^(stem\.conv1|res[2-5]\.\d+\.(conv[1-3]|shortcut))(\.norm)?"
                     r"\.(weight|bias|running_mean|running_var|num_batches_tracked)$")


def test_detectron2_export_key_layout(tmp_path):
    for k, v in EXPECTED.items():
        assert detectron2_key(k) == v
    sd = build_backbone("resnet50").state_dict()
    path = export_detectron2(sd, str(tmp_path / "r50.pkl"))
    with open(path, "rb") as f:
        data = pickle.load(f)
    assert data["matching_heuristics"] is True and "__author__" in data
    model = data["model"]
    assert len(model) == len(sd) and all(D2_NAME.match(k) for k in model), [k for k in model if not D2_NAME.match(k)]
    for k, v in sd.items():
        assert (model[detectron2_key(k)] == v.numpy()).all()
    assert model["res5.2.conv3.norm.running_var"].shape == (2048,)
