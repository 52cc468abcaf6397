"""Backbones: shapes, widths, stems, BN settings, and equality with torchvision's ResNet."""
import pytest
import torch
import torchvision
from torch import nn

from ssl_zoo.config import get_cfg
from ssl_zoo.modeling.backbones import BACKBONE_REGISTRY, ResNet, build_backbone, build_backbone_from_cfg

torch.set_num_threads(1)

SMALL = ["resnet10", "resnet18", "resnet34", "resnet50"]
DEEP = ["resnet101", "resnet152", "resnet200"]
EXPANSION = {"resnet10": 1, "resnet18": 1, "resnet34": 1}


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name", BACKBONE_REGISTRY.names())
def test_every_registered_name_output_shape(name):
    torch.manual_seed(0)
    base = 8
    m = build_backbone(name, base_width=base)
    expected = 8 * base * EXPANSION.get(name.replace("_cifar", ""), 4)
    assert m.out_dim == expected
    if name.replace("_cifar", "") in DEEP and not name.endswith("_cifar"):
        # One tiny eval forward for the deep nets (keep the suite fast).
        m.eval()
        with torch.no_grad():
            assert m(torch.randn(1, 3, 32, 32)).shape == (1, expected)
        return
    x = torch.randn(2, 3, 32, 32, requires_grad=False)
    y = m(x)
    assert y.shape == (2, expected)
    y.sum().backward()
    assert all(p.grad is not None for p in m.parameters())


def _state_shapes(m: nn.Module) -> dict:
    return {k: tuple(v.shape) for k, v in m.state_dict().items() if not k.startswith("fc.")}


@pytest.mark.parametrize(
    "name,tv_fn",
    [
        ("resnet18", torchvision.models.resnet18),
        ("resnet34", torchvision.models.resnet34),
        ("resnet50", torchvision.models.resnet50),
        ("resnet101", torchvision.models.resnet101),
        ("resnet152", torchvision.models.resnet152),
    ],
)
def test_width1_matches_torchvision_architecture(name, tv_fn):
    # Built on the meta device: shapes only, no memory, no init cost.
    with torch.device("meta"):
        ours = build_backbone(name)
        ref = tv_fn()
    assert _state_shapes(ours) == _state_shapes(ref)
    assert ours.out_dim == ref.fc.in_features


def test_resnet18_forward_equals_torchvision():
    torch.manual_seed(0)
    ours = build_backbone("resnet18").eval()
    ref = torchvision.models.resnet18()
    ref.fc = nn.Identity()
    ref.load_state_dict(ours.state_dict(), strict=True)
    ref.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x))


def test_param_counts_match_published_figures():
    # SimCLR Table / BYOL Table 1: R50 24M, R50 2x 94M, R50 4x 375M, R200 2x 250M.
    with torch.device("meta"):
        counts = {
            (n, w): n_params(build_backbone(n, width=w))
            for n, w in [("resnet50", 1), ("resnet50", 2), ("resnet50", 4), ("resnet200", 2)]
        }
    assert counts[("resnet50", 1)] == 23_508_032  # torchvision resnet50 without fc
    assert round(counts[("resnet50", 2)] / 1e6) == 94
    assert round(counts[("resnet50", 4)] / 1e6) == 375
    assert round(counts[("resnet200", 2)] / 1e6) == 250


def test_width_multiplier_doubles_out_dim_and_quadruples_params():
    with torch.device("meta"):
        m1 = build_backbone("resnet50")
        m2 = build_backbone("resnet50", width=2)
    assert m1.out_dim == 2048 and m2.out_dim == 4096
    assert 3.9 < n_params(m2) / n_params(m1) < 4.05
    # every conv is twice as wide, stem included
    convs1 = [m.out_channels for m in m1.modules() if isinstance(m, nn.Conv2d)]
    convs2 = [m.out_channels for m in m2.modules() if isinstance(m, nn.Conv2d)]
    assert convs2 == [2 * c for c in convs1]


def test_base_width_scales_all_stages():
    m = build_backbone("resnet18", base_width=16)
    assert m.conv1.out_channels == 16
    assert [getattr(m, f"layer{i}")[-1].conv2.out_channels for i in range(1, 5)] == [16, 32, 64, 128]
    assert m.out_dim == 128


def test_cifar_stem_keeps_resolution():
    m = build_backbone("resnet18", base_width=8, cifar_stem=True)
    assert m.conv1.kernel_size == (3, 3) and m.conv1.stride == (1, 1)
    assert isinstance(m.maxpool, nn.Identity)
    feats = {}

    def record(key):
        def hook(mod, inp, out):
            feats[key] = out.shape  # returns None: the output is left unchanged

        return hook

    m.layer1.register_forward_hook(record("l1"))
    out = m.forward_features(torch.randn(2, 3, 32, 32))
    assert feats["l1"][-2:] == (32, 32)
    assert out.shape[-2:] == (4, 4)
    # ImageNet stem: 32 -> 8 at stage 1
    m2 = build_backbone("resnet18", base_width=8)
    m2.layer1.register_forward_hook(record("l1_in"))
    m2(torch.randn(2, 3, 32, 32))
    assert feats["l1_in"][-2:] == (8, 8)
    assert build_backbone("resnet18_cifar", base_width=8).conv1.stride == (1, 1)


def test_bn_hyperparameters_on_every_bn():
    m = build_backbone("resnet50", base_width=8, bn_momentum=0.01, bn_eps=1e-3)
    bns = [x for x in m.modules() if isinstance(x, nn.BatchNorm2d)]
    assert len(bns) == 53
    assert all(b.momentum == 0.01 and b.eps == 1e-3 for b in bns)


def test_zero_init_residual():
    m = build_backbone("resnet18", base_width=8, zero_init_residual=True)
    blocks = [b for b in m.modules() if isinstance(b, torchvision.models.resnet.BasicBlock)]
    assert blocks and all(float(b.bn2.weight.detach().abs().sum()) == 0 for b in blocks)
    assert float(m.bn1.weight.detach().sum()) == 8  # other BNs keep gamma 1
    m = build_backbone("resnet50", base_width=8, zero_init_residual=True)
    blocks = [b for b in m.modules() if isinstance(b, torchvision.models.resnet.Bottleneck)]
    assert blocks and all(float(b.bn3.weight.detach().abs().sum()) == 0 for b in blocks)
    # a zero-initialised residual branch makes each block the identity (+ReLU): still a valid forward
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 256)


def test_timm_backbone():
    m = build_backbone("timm:resnet10t", bn_momentum=0.03, bn_eps=1e-4)
    assert m.out_dim == 512
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 512)
    bns = [x for x in m.modules() if isinstance(x, nn.modules.batchnorm._BatchNorm)]
    assert bns and all(b.momentum == 0.03 and b.eps == 1e-4 for b in bns)


def test_timm_rejects_resnet_only_options_and_unknown_names():
    with pytest.raises(ValueError, match="width"):
        build_backbone("timm:resnet10t", width=2)
    with pytest.raises(KeyError):
        build_backbone("timm:no_such_model_xyz")
    with pytest.raises(KeyError, match="resnet18"):
        build_backbone("resnet19")


def test_build_from_cfg():
    cfg = get_cfg()
    cfg.MODEL.BACKBONE.NAME = "resnet18"
    cfg.MODEL.BACKBONE.WIDTH = 2
    cfg.MODEL.BACKBONE.BASE_WIDTH = 8
    cfg.MODEL.BACKBONE.CIFAR_STEM = True
    cfg.MODEL.BN.MOMENTUM = 0.05
    cfg.MODEL.BN.EPS = 2e-5
    m = build_backbone_from_cfg(cfg)
    assert isinstance(m, ResNet)
    assert m.out_dim == 128 and m.conv1.out_channels == 16 and m.cifar_stem
    assert all(b.momentum == 0.05 and b.eps == 2e-5 for b in m.modules() if isinstance(b, nn.BatchNorm2d))
