"""Heads (MLP structure) and the BYOL loss against hand computations and naive formulas."""
import math

import pytest
import torch
from torch import nn

from ssl_zoo.modeling.heads import MLP
from ssl_zoo.modeling.losses import BYOLLoss, normalized_mse

torch.set_num_threads(1)


def _types(m):
    return [type(x) for x in m]


def test_mlp_structure_and_shapes():
    m = MLP(16, 32, 8, bn_momentum=0.2, bn_eps=1e-3)
    assert _types(m) == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert (m[0].in_features, m[0].out_features, m[3].in_features, m[3].out_features) == (16, 32, 32, 8)
    assert m[1].momentum == 0.2 and m[1].eps == 1e-3
    assert m[3].bias is not None
    assert m(torch.randn(4, 16)).shape == (4, 8)
    assert (m.in_dim, m.hidden_dim, m.out_dim) == (16, 32, 8)


def test_mlp_forward_equals_manual_composition():
    torch.manual_seed(0)
    m = MLP(6, 10, 3)
    x = torch.randn(5, 6)
    h = m[0](x)
    h = (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + 1e-5)  # BN, gamma 1, beta 0
    ref = m[3](torch.relu(h))
    torch.testing.assert_close(m(x), ref)


def test_mlp_three_layers_last_bn():
    m = MLP(8, 16, 4, num_layers=3, last_bn=True)
    assert _types(m) == [nn.Linear, nn.BatchNorm1d, nn.ReLU] * 2 + [nn.Linear, nn.BatchNorm1d]
    assert m[6].bias is None  # the output BN makes a bias redundant
    assert m(torch.randn(3, 8)).shape == (3, 4)
    one = MLP(8, 16, 4, num_layers=1)
    assert _types(one) == [nn.Linear]
    with pytest.raises(ValueError):
        MLP(8, 16, 4, num_layers=0)


def test_paper_configs_build_paper_head_sizes():
    """PROTOCOLS.md s.2: BYOL's projector 2048 -> 4096 -> 256 and predictor 256 -> 4096 -> 256 without
    output BN; s.8: SimCLR 2048 -> 2048 -> 128 with BN; MoCo v2 2048 -> 2048 -> 128 without BN."""
    from ssl_zoo.config import load_config
    from ssl_zoo.modeling.method import METHOD_REGISTRY

    def linears(m):
        return [(l.in_features, l.out_features) for l in m if isinstance(l, nn.Linear)]

    def parts(config):
        cfg = load_config(config)
        with torch.device("meta"):
            return METHOD_REGISTRY.get(cfg.MODEL.METHOD).from_config(cfg)

    byol = parts("configs/byol/r50_1000ep.yaml")
    assert linears(byol["projector"]) == [(2048, 4096), (4096, 256)]
    assert linears(byol["predictor"]) == [(256, 4096), (4096, 256)]
    assert not any(isinstance(l, nn.BatchNorm1d) for l in (byol["projector"][-1], byol["predictor"][-1]))
    simclr = parts("configs/simclr/r50_1000ep.yaml")
    assert linears(simclr["projector"]) == [(2048, 2048), (2048, 128)]
    assert sum(isinstance(l, nn.BatchNorm1d) for l in simclr["projector"]) >= 1
    moco = parts("configs/mocov2/r50_200ep.yaml")
    assert linears(moco["projector"]) == [(2048, 2048), (2048, 128)]
    assert not any(isinstance(l, nn.BatchNorm1d) for l in moco["projector"])


def test_normalized_mse_hand_values():
    p = torch.tensor([[1.0, 0.0], [1.0, 0.0], [3.0, 4.0], [2.0, 2.0]])
    z = torch.tensor([[5.0, 0.0], [-1.0, 0.0], [0.0, 7.0], [0.0, 1.0]])
    # same direction 0, opposite 4, cos = 4/5 -> 2 - 8/5, 45 degrees -> 2 - sqrt(2)
    expected = torch.tensor([0.0, 4.0, 2.0 - 1.6, 2.0 - math.sqrt(2.0)])
    torch.testing.assert_close(normalized_mse(p, z), expected)


def test_normalized_mse_equals_distance_of_unit_vectors_and_2_minus_2cos():
    torch.manual_seed(0)
    p, z = torch.randn(7, 5, dtype=torch.float64), torch.randn(7, 5, dtype=torch.float64)
    naive = ((p / p.norm(dim=1, keepdim=True) - z / z.norm(dim=1, keepdim=True)) ** 2).sum(1)
    cos = torch.nn.functional.cosine_similarity(p, z, dim=1)
    out = normalized_mse(p, z)
    assert out.shape == (7,)
    torch.testing.assert_close(out, naive)
    torch.testing.assert_close(out, 2 - 2 * cos)


def test_normalized_mse_half_precision_computed_in_float32():
    torch.manual_seed(0)
    p, z = torch.randn(4, 8), torch.randn(4, 8)
    out = normalized_mse(p.bfloat16(), z.bfloat16())
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, normalized_mse(p.bfloat16().float(), z.bfloat16().float()))


def test_byol_loss_is_sum_of_directional_means():
    torch.manual_seed(0)
    p1, p2, z1, z2 = (torch.randn(6, 4) for _ in range(4))
    loss = BYOLLoss()(p1, p2, z1, z2)
    assert loss.dim() == 0
    expected = normalized_mse(p1, z2).mean() + normalized_mse(p2, z1).mean()
    torch.testing.assert_close(loss, expected)
    # identical predictions and targets: 0; opposite: 2 * 4 = 8 (SUMMED, not averaged)
    torch.testing.assert_close(BYOLLoss()(p1, p2, p2, p1), torch.tensor(0.0), atol=1e-6, rtol=0)
    torch.testing.assert_close(BYOLLoss()(p1, p2, -p2, -p1), torch.tensor(8.0))


def test_byol_loss_gradient_vs_closed_form_and_no_grad_to_targets():
    torch.manual_seed(0)
    b = 5
    p1, p2, z1, z2 = (torch.randn(b, 3, dtype=torch.float64, requires_grad=True) for _ in range(4))
    BYOLLoss()(p1, p2, z1, z2).backward()
    # d/dp (2 - 2 p.u/|p|) with u = z/|z|:  -2/|p| (u - (p.u) p/|p|^2), times 1/B from the mean.
    for p, z in ((p1, z2), (p2, z1)):
        with torch.no_grad():
            u = z / z.norm(dim=1, keepdim=True)
            n = p.norm(dim=1, keepdim=True)
            pu = (p * u).sum(1, keepdim=True)
            expected = -2.0 / n * (u - pu * p / n**2) / b
        torch.testing.assert_close(p.grad, expected)
    assert z1.grad is None and z2.grad is None  # stop-gradient inside the loss


def test_byol_loss_gradcheck():
    torch.manual_seed(0)
    p1, p2 = (torch.randn(4, 3, dtype=torch.float64, requires_grad=True) for _ in range(2))
    z1, z2 = (torch.randn(4, 3, dtype=torch.float64) for _ in range(2))
    assert torch.autograd.gradcheck(lambda a, c: BYOLLoss()(a, c, z1, z2), (p1, p2))
