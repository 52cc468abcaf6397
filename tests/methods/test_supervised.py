"""The supervised baseline method: mean cross-entropy over views, clear errors without labels."""
import os

import pytest
import torch
import torch.nn.functional as F

from ssl_zoo.config import load_config
from ssl_zoo.modeling.method import build_method



def _model():
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "configs/supervised/cifar10_r10.yaml")
    cfg = load_config(path,
                      ["MODEL.BACKBONE.BASE_WIDTH", "4", "SUPERVISED.NUM_CLASSES", "3"])
    torch.manual_seed(0)
    return build_method(cfg).train()


def test_loss_is_mean_cross_entropy_over_views():
    model = _model()
    views = [torch.randn(6, 3, 16, 16), torch.randn(6, 3, 16, 16)]
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    out = model(views, labels)
    ref = torch.stack([F.cross_entropy(model.classifier(model.backbone(v)), labels) for v in views]).mean()
    assert torch.allclose(out["loss"], ref, atol=1e-5)
    hits = sum((model.classifier(model.backbone(v)).argmax(1) == labels).sum() for v in views)
    assert out["train_top1"].item() == pytest.approx(100.0 * hits.item() / 12)


def test_needs_labels_in_range():
    model = _model()
    with pytest.raises(ValueError, match="needs labels"):
        model([torch.randn(2, 3, 16, 16)], None)
    with pytest.raises(ValueError, match=r"NUM_CLASSES"):
        model([torch.randn(2, 3, 16, 16)], torch.tensor([0, 5]))
