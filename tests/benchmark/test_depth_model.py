"""FCRN decoder (Laina et al. 2016, official TF code): the fast up-convolution against a loop
reference written from the official ``unpool_as_conv`` (pad, VALID conv, interleave), the
up-projection's layout, 1/2-resolution output on an R50-shaped and a CIFAR-stem backbone, and an
overfit of a two-image fixture with the berHu loss."""
import numpy as np
import torch
import torch.nn.functional as F

from ssl_zoo.benchmark.depth.loss import berhu_loss
from ssl_zoo.benchmark.depth.model import FastUpConv, UpProjection, build_fcrn, decoder_channels
from ssl_zoo.modeling.backbones.build import build_backbone

# official tf.pad of each branch before its VALID conv: ((top, bottom), (left, right))
OFFICIAL_PADS = {"A": ((1, 1), (1, 1)), "B": ((1, 0), (1, 1)), "C": ((1, 1), (1, 0)), "D": ((1, 0), (1, 0))}


def _valid_conv_loops(x, w, pads):
    """x [C, H, W], w [O, C, kh, kw] -> [O, H, W]: zero-pad, then correlate (TF's conv2d) with loops."""
    xp = np.pad(x, ((0, 0), *pads))
    o, _, kh, kw = w.shape
    out = np.zeros((o, xp.shape[1] - kh + 1, xp.shape[2] - kw + 1))
    for i in range(out.shape[1]):
        for j in range(out.shape[2]):
            out[:, i, j] = np.tensordot(w, xp[:, i:i + kh, j:j + kw], axes=([1, 2, 3], [0, 1, 2]))
    return out


def test_fast_up_conv_matches_the_official_interleaving():
    torch.manual_seed(0)
    m = FastUpConv(2, 3, relu=False).eval()  # BN at init in eval: y = x / sqrt(1 + eps)
    x = torch.randn(1, 2, 3, 4)
    with torch.no_grad():
        got = m(x)[0].numpy() * np.sqrt(1 + m.bn.eps)
    ws = {k: conv.weight.detach().numpy() for k, conv in zip("ABCD", m.convs)}
    assert [w.shape[2:] for w in ws.values()] == [(3, 3), (2, 3), (3, 2), (2, 2)]
    outs = {k: _valid_conv_loops(x[0].numpy(), ws[k], OFFICIAL_PADS[k]) for k in "ABCD"}
    assert all(o.shape == (3, 3, 4) for o in outs.values())
    want = np.zeros((3, 6, 8))
    for i in range(3):
        for j in range(4):  # interleave([A,B], rows), interleave([C,D], rows), then the two by columns
            want[:, 2 * i, 2 * j] = outs["A"][:, i, j]
            want[:, 2 * i + 1, 2 * j] = outs["B"][:, i, j]
            want[:, 2 * i, 2 * j + 1] = outs["C"][:, i, j]
            want[:, 2 * i + 1, 2 * j + 1] = outs["D"][:, i, j]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_up_projection_is_relu_of_two_branches():
    torch.manual_seed(0)
    block = UpProjection(4, 2).eval()
    x = torch.randn(1, 4, 3, 3)
    with torch.no_grad():
        branch1 = block.bn(block.conv(F.relu(block.up1.bn(_raw(block.up1, x)))))
        branch2 = block.up2.bn(_raw(block.up2, x))
        torch.testing.assert_close(block(x), F.relu(branch1 + branch2))
    assert block(x).shape == (1, 2, 6, 6) and block.conv.kernel_size == (3, 3)


def _raw(up, x):
    bn, relu = up.bn, up.relu
    up.bn, up.relu = torch.nn.Identity(), False
    try:
        return up(x)
    finally:
        up.bn, up.relu = bn, relu


def test_decoder_channels_follow_the_paper_for_r50():
    assert decoder_channels(2048, 32) == (512, 256, 128, 64)
    assert decoder_channels(128, 8) == (32, 16)


def test_half_resolution_on_r50_and_cifar_backbones():
    fcrn = build_fcrn(build_backbone("resnet50", base_width=8))
    assert len(fcrn.decoder) == 4 and fcrn.output_stride == 2
    assert fcrn(torch.randn(1, 3, 64, 96)).shape == (1, 1, 32, 48)
    assert fcrn(torch.randn(1, 3, 228, 304)).shape == (1, 1, 128, 160)  # the paper's 304x228 -> 160x128
    small = build_fcrn(build_backbone("resnet10", base_width=4, cifar_stem=True))
    assert len(small.decoder) == 2 and small(torch.randn(2, 3, 32, 48)).shape == (2, 1, 16, 24)


def test_overfits_a_two_image_fixture():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    ramp = torch.linspace(1, 3, 16).view(1, 1, 16, 1).expand(2, 1, 16, 16).clone()
    ramp[1] = 4 - ramp[1]
    valid = torch.ones_like(ramp, dtype=torch.bool)
    valid[:, :, :2] = False
    fcrn = build_fcrn(build_backbone("resnet10", base_width=4, cifar_stem=True))
    opt = torch.optim.SGD(fcrn.parameters(), lr=0.02, momentum=0.9)
    first = None
    for _ in range(80):
        loss = berhu_loss(fcrn(x), ramp, valid)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        rms = (fcrn(x) - ramp)[valid].pow(2).mean().sqrt().item()
    assert first > 1.0 and loss.item() < 0.1 * first and rms < 0.25
