"""Tests of ssl_zoo.data.transforms: presets = PROTOCOLS.md numbers, batched ops = torchvision
per sample, batched sampling = the PIL path's distributions, determinism, shapes."""
import dataclasses
import math

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TVF
from PIL import Image
from torchvision.transforms import InterpolationMode, RandomResizedCrop

from ssl_zoo.data.transforms import (
    AUGMENTATION_REGISTRY,
    IMAGENET_MEAN,
    IMAGENET_STD,
    BatchedMultiViewAugment,
    CropOnlyTransform,
    MultiViewPILTransform,
    ViewParams,
    ViewSpec,
    augment_view,
    build_eval_transform,
    get_view_specs,
    sample_view_params,
)
from ssl_zoo.config import get_cfg
from ssl_zoo.data.build import apply_overrides, view_specs_from_cfg
from ssl_zoo.data.transforms import colour, filters, geometry

torch.set_num_threads(1)

# Identity spec: every random op off, full-image crop.
IDENTITY = dict(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_prob=0.0, jitter_prob=0.0,
                grayscale_prob=0.0, blur_prob=0.0, solarize_prob=0.0)


def _images(b=6, h=20, w=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g)


def _smooth_uint8_image(size=32, seed=0):
    """A structured image (smooth colour gradients + a little noise) as PIL and uint8 tensor."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    img = torch.stack([xx, yy, 0.5 + 0.5 * torch.sin(6 * xx * yy)]) * 0.8 + 0.2 * torch.rand(3, size, size, generator=g)
    u8 = (img.clamp(0, 1) * 255).round().to(torch.uint8)
    return Image.fromarray(u8.permute(1, 2, 0).numpy()), u8


# ---------------------------------------------------------------------------- presets


def test_byol_preset_matches_protocols():  # PROTOCOLS.md s.1
    t, t2 = get_view_specs("byol", 224)
    for s in (t, t2):
        assert s.size == 224 and s.interpolation == "bicubic"
        assert s.crop_scale == (0.08, 1.0) and s.crop_ratio == pytest.approx((3 / 4, 4 / 3))
        assert s.flip_prob == 0.5 and s.jitter_prob == 0.8
        assert (s.brightness, s.contrast, s.saturation, s.hue) == (0.4, 0.4, 0.2, 0.1)
        assert s.grayscale_prob == 0.2 and s.blur_sigma == (0.1, 2.0) and s.blur_kernel_size == 23
    assert (t.blur_prob, t.solarize_prob) == (1.0, 0.0)
    assert (t2.blur_prob, t2.solarize_prob) == (0.1, 0.2)


def test_other_presets_match_protocols():  # PROTOCOLS.md s.7, s.8
    for s in get_view_specs("simclr", 224):
        assert (s.brightness, s.contrast, s.saturation, s.hue) == pytest.approx((0.8, 0.8, 0.8, 0.2))
        assert s.jitter_prob == 0.8 and s.blur_prob == 0.5 and s.grayscale_prob == 0.2
        assert s.crop_scale == (0.08, 1.0) and s.solarize_prob == 0.0
    for s in get_view_specs("mocov2", 224):
        assert s.crop_scale == (0.2, 1.0) and s.blur_prob == 0.5 and s.jitter_prob == 0.8
        assert (s.brightness, s.contrast, s.saturation, s.hue) == (0.4, 0.4, 0.4, 0.1)
    for s in get_view_specs("mocov1", 224):
        assert s.crop_scale == (0.2, 1.0) and s.blur_prob == 0.0 and s.jitter_prob == 1.0
        assert (s.brightness, s.contrast, s.saturation, s.hue) == (0.4, 0.4, 0.4, 0.4)
    cifar = get_view_specs("byol_cifar", 32)
    assert [s.blur_prob for s in cifar] == [0.0, 0.0] and [s.solarize_prob for s in cifar] == [0.0, 0.2]
    assert cifar[0].size == 32 and cifar[0].blur_kernel_size == 3
    sym = get_view_specs("symmetric_byol", 224)
    assert [(s.blur_prob, s.solarize_prob) for s in sym] == [(0.5, 0.2), (0.5, 0.2)]


def test_overrides_apply_and_validate():
    overrides = {"GRAYSCALE_PROB": (0.0, 0.0), "CROP_SCALE": (0.2, 1.0), "BLUR_PROB": None,
                 "JITTER_STRENGTH": (0.1, 0.2, 0.3, 0.05), "flip_prob": 0.0, "SOLARIZE_PROB": [0.3, 0.4],
                 "BLUR_SIGMA": (0.5, 1.0), "CROP_RATIO": (1.0, 1.0), "JITTER_PROB": (1.0, 0.5)}
    specs = apply_overrides(get_view_specs("byol", 96), overrides)
    assert [s.grayscale_prob for s in specs] == [0.0, 0.0]
    assert [s.blur_prob for s in specs] == [1.0, 0.1]  # None keeps the preset
    assert [s.solarize_prob for s in specs] == [0.3, 0.4] and [s.jitter_prob for s in specs] == [1.0, 0.5]
    for s in specs:
        assert s.size == 96 and s.crop_scale == (0.2, 1.0) and s.crop_ratio == (1.0, 1.0) and s.flip_prob == 0.0
        assert (s.brightness, s.contrast, s.saturation, s.hue) == (0.1, 0.2, 0.3, 0.05) and s.blur_sigma == (0.5, 1.0)
    with pytest.raises(KeyError):
        apply_overrides(get_view_specs("byol", 32), {"GRAYSCALE": (0, 0)})
    with pytest.raises(ValueError):
        apply_overrides(get_view_specs("byol", 32), {"FLIP_PROB": (0.5, 0.5, 0.5)})
    with pytest.raises(KeyError):
        get_view_specs("bycol", 32)
    with pytest.raises(ValueError):
        ViewSpec(hue=0.7)
    assert "byol" in AUGMENTATION_REGISTRY


def test_view_specs_from_cfg():
    cfg = get_cfg()
    cfg.INPUT.AUG_PRESET, cfg.INPUT.IMAGE_SIZE = "byol_cifar", 32
    cfg.INPUT.AUG.SOLARIZE_PROB = (0.0, 0.0)
    specs = view_specs_from_cfg(cfg)
    assert [s.solarize_prob for s in specs] == [0.0, 0.0] and specs[0].size == 32


# ---------------------------------------------------------------------------- ops vs torchvision


@pytest.mark.parametrize("name", ["brightness", "contrast", "saturation", "hue"])
def test_jitter_ops_match_torchvision_per_sample(name):
    x = _images()
    if name == "hue":
        factors = torch.tensor([-0.5, -0.31, -0.05, 0.0, 0.17, 0.5])
    else:
        factors = torch.tensor([0.0, 0.3, 0.9, 1.0, 1.4, 2.5])
    if name == "hue":
        ours = colour.adjust_hue(x, factors)
    else:  # the fused blend with every sample on this op
        op = torch.full((x.shape[0],), ("brightness", "contrast", "saturation").index(name))
        ours = colour.adjust_brightness_contrast_saturation(x.clone(), factors, op)
    tv = getattr(TVF, f"adjust_{name}")
    for b in range(x.shape[0]):
        ref = tv(x[b], float(factors[b]))
        torch.testing.assert_close(ours[b], ref, atol=2e-6, rtol=0)


def test_hue_handles_gray_and_saturated_pixels():
    x = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.5], [0, 0, 0], [1, 1, 0.0]])
    x = x.T.reshape(1, 3, 2, 3).repeat(2, 1, 1, 1)
    f = torch.tensor([0.25, -0.4])
    ours = colour.adjust_hue(x, f)
    for b in range(2):
        torch.testing.assert_close(ours[b], TVF.adjust_hue(x[b], float(f[b])), atol=1e-6, rtol=0)


def test_grayscale_solarize_match_torchvision():
    x = _images()
    gray = colour.rgb_to_grayscale(x)
    sol, sol_other = colour.solarize(x, 0.5), colour.solarize(x, 0.3)
    for b in range(x.shape[0]):
        torch.testing.assert_close(gray[b], TVF.rgb_to_grayscale(x[b]), atol=1e-7, rtol=0)
        torch.testing.assert_close(sol[b], TVF.solarize(x[b], 0.5))
        torch.testing.assert_close(sol_other[b], TVF.solarize(x[b], 0.3))


@pytest.mark.parametrize("kernel_size", [3, 9, 23])
def test_gaussian_blur_matches_torchvision_per_sample(kernel_size):
    x = _images()
    sigma = torch.tensor([0.1, 0.5, 0.9, 1.3, 2.0, 3.0])  # several support radii: several kernel groups
    ours = filters.gaussian_blur(x, kernel_size, sigma)
    for b in range(x.shape[0]):
        s = float(sigma[b])
        ref = TVF.gaussian_blur(x[b], [kernel_size, kernel_size], [s, s])
        # torchvision sums K^2 float32 products (529 at K = 23): its own rounding reaches ~1e-6
        # there (a separable blur with all 23 taps differs from it by 1.01e-6 as well).
        torch.testing.assert_close(ours[b], ref, atol=1e-6 if kernel_size < 23 else 1.5e-6, rtol=0)


def test_blur_support_radius_drops_only_negligible_taps():
    """The skipped outer taps weigh <= 1e-7 in all, and one more tap would be needed above it."""
    sigma = torch.tensor([0.1, 0.5, 1.0, 2.0])
    taps = filters.gaussian_kernel1d(23, sigma, dtype=torch.float64)
    radius = filters.support_radius(taps)
    assert radius.tolist()[0] <= 1 and radius.tolist()[-1] == 11 and radius.tolist() == sorted(radius.tolist())
    for row, r in zip(taps, radius.tolist()):
        d = (torch.arange(23) - 11).abs()
        assert float(row[d > r].sum()) <= 1e-7
        if r > 0:
            assert float(row[d > r - 1].sum()) > 1e-7


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_resized_crop_matches_torchvision(interpolation):
    x = _images(b=5, h=40, w=36)
    boxes = torch.tensor([[0, 0, 40, 36], [3, 5, 10, 7], [10, 2, 30, 33], [0, 20, 17, 16], [22, 1, 18, 9]])
    flip = torch.tensor([False, True, False, True, False])
    mode = InterpolationMode(interpolation)
    for size in (16, 24):  # mixes enlarging and shrinking crops
        ours = geometry.resized_crop(x, boxes, size, interpolation, flip=flip)
        for b, (top, left, h, w) in enumerate(boxes.tolist()):
            ref = TVF.resized_crop(x[b], top, left, h, w, [size, size], mode, antialias=True)
            ref = TVF.hflip(ref) if flip[b] else ref
            torch.testing.assert_close(ours[b], ref, atol=1e-5, rtol=0)


def test_resized_crop_enlarging_equals_plain_bilinear():
    # When every crop is enlarged the antialiased and plain (antialias=False) bilinear agree.
    x = _images(b=3, h=32, w=32)
    boxes = torch.tensor([[0, 0, 32, 32], [4, 9, 11, 20], [13, 0, 19, 8]])
    ours = geometry.resized_crop(x, boxes, 32, "bilinear")
    for b, (top, left, h, w) in enumerate(boxes.tolist()):
        ref = TVF.resized_crop(x[b], top, left, h, w, [32, 32], InterpolationMode.BILINEAR, antialias=False)
        torch.testing.assert_close(ours[b], ref, atol=1e-5, rtol=0)


def test_resized_crop_close_to_pil_bicubic():
    pil, u8 = _smooth_uint8_image(48)
    boxes = torch.tensor([[0, 0, 48, 48], [5, 7, 20, 25], [10, 3, 38, 30]])
    ours = geometry.resized_crop(u8[None].float().div(255).repeat(3, 1, 1, 1), boxes, 32, "bicubic").clamp(0, 1)
    for b, (top, left, h, w) in enumerate(boxes.tolist()):
        ref = TVF.resized_crop(pil, top, left, h, w, [32, 32], InterpolationMode.BICUBIC)
        ref = TVF.pil_to_tensor(ref).float() / 255
        # PIL rounds to uint8 after each of its two separable passes.
        assert (ours[b] - ref).abs().max() <= 2.5 / 255


# ---------------------------------------------------------------------------- full view vs torchvision


def test_augment_view_equals_sequential_torchvision_ops():
    """At fixed parameters, one batched call = torchvision's ops applied sample by sample."""
    b = 8
    x = _images(b=b, h=16, w=16, seed=3)
    spec = ViewSpec(size=16, blur_kernel_fraction=0.4)  # kernel 7
    g = torch.Generator().manual_seed(0)
    p = sample_view_params(spec, b, None, g)
    p.jitter[:] = torch.tensor([True] * 6 + [False] * 2)
    p.flip[:], p.grayscale[:] = torch.arange(b) % 2 == 0, torch.arange(b) % 3 == 0
    p.blur[:], p.solarize[:] = torch.arange(b) % 2 == 1, torch.arange(b) < 4
    ours = augment_view(x, spec, p)
    tv_ops = [TVF.adjust_brightness, TVF.adjust_contrast, TVF.adjust_saturation, TVF.adjust_hue]
    for i in range(b):
        img = TVF.hflip(x[i]) if p.flip[i] else x[i]
        if p.jitter[i]:
            for op in p.order[i].tolist():
                img = tv_ops[op](img, float(p.factors[i, op]))
        if p.grayscale[i]:
            img = TVF.rgb_to_grayscale(img, 3)
        if p.blur[i]:
            s = float(p.sigma[i])
            img = TVF.gaussian_blur(img, [7, 7], [s, s])
        if p.solarize[i]:
            img = TVF.solarize(img, 0.5)
        torch.testing.assert_close(ours[i], img, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------- statistics


def _quantiles(t, qs=(0.05, 0.25, 0.5, 0.75, 0.95)):
    return np.quantile(np.asarray(t, dtype=np.float64), qs)


@pytest.mark.parametrize("hw,scale", [((32, 32), (0.08, 1.0)), ((30, 50), (0.2, 1.0))])
def test_crop_params_distribution_matches_torchvision(hw, scale):
    h, w = hw
    ratio = (3 / 4, 4 / 3)
    ours = geometry.sample_resized_crop_params(20000, h, w, scale, ratio, torch.Generator().manual_seed(0)).double()
    torch.manual_seed(0)
    img = torch.empty(1, h, w)
    tv = torch.tensor([RandomResizedCrop.get_params(img, list(scale), list(ratio)) for _ in range(4000)]).double()
    for boxes in (ours, tv):
        top, left, bh, bw = boxes.unbind(1)
        assert (top >= 0).all() and (left >= 0).all() and (top + bh <= h).all() and (left + bw <= w).all()
    area = lambda bx: bx[:, 2] * bx[:, 3] / (h * w)  # noqa: E731
    logr = lambda bx: torch.log(bx[:, 3] / bx[:, 2])  # noqa: E731
    centre_y = lambda bx: (bx[:, 0] + bx[:, 2] / 2) / h  # noqa: E731
    for stat, tol in ((area, 0.03), (logr, 0.04), (centre_y, 0.03)):
        np.testing.assert_allclose(_quantiles(stat(ours)), _quantiles(stat(tv)), atol=tol)
    a = area(ours)
    assert a.min() >= scale[0] - 0.03 and a.max() <= 1.0
    # The rounded area/ratio stay near the preset bounds on fitting draws.
    assert logr(ours).abs().max() <= math.log(4 / 3) + 0.15


def test_crop_fallback_matches_torchvision():
    # No attempt can fit (ratio 3-4 needs w = 3h with area ~ all): centre crop clipped to the ratio.
    ours = geometry.sample_resized_crop_params(50, 32, 32, (0.99, 1.0), (3.0, 4.0), torch.Generator().manual_seed(0))
    tv = RandomResizedCrop.get_params(torch.empty(1, 32, 32), [0.99, 1.0], [3.0, 4.0])
    assert (ours == torch.tensor(tv)).all()


def test_random_rates_factors_and_orders():
    n = 20000
    for spec in get_view_specs("byol", 224):
        p = sample_view_params(spec, n, (64, 64), torch.Generator().manual_seed(1))
        for mask, prob in ((p.flip, spec.flip_prob), (p.jitter, spec.jitter_prob), (p.grayscale, spec.grayscale_prob),
                           (p.blur, spec.blur_prob), (p.solarize, spec.solarize_prob)):
            se = math.sqrt(prob * (1 - prob) / n) + 1e-12
            assert abs(mask.float().mean().item() - prob) <= 4 * se + 1e-9
        # BYOL's brightness is the official additive offset U[-0.4, 0.4] (jitter_impl "tf").
        for k, (lo, hi) in enumerate([(-0.4, 0.4), (0.6, 1.4), (0.8, 1.2), (-0.1, 0.1)]):
            f = p.factors[:, k]
            assert f.min() >= lo and f.max() <= hi
            expected = lo + (hi - lo) * np.array([0.1, 0.5, 0.9])
            np.testing.assert_allclose(_quantiles(f, (0.1, 0.5, 0.9)), expected, atol=0.02 * (hi - lo))
        assert p.sigma.min() >= 0.1 and p.sigma.max() <= 2.0
        np.testing.assert_allclose(_quantiles(p.sigma, (0.25, 0.75)), [0.575, 1.525], atol=0.04)
        # All 24 orders, each ~1/24 of the samples.
        codes = (p.order * torch.tensor([64, 16, 4, 1])).sum(1)
        counts = torch.bincount(codes, minlength=256)[torch.bincount(codes, minlength=256) > 0]
        assert len(counts) == 24 and (p.order.sort(1).values == torch.arange(4)).all()
        assert (counts.float() / n - 1 / 24).abs().max() < 4 * math.sqrt((1 / 24) * (23 / 24) / n)


def test_application_rates_through_the_pipeline():
    """Measured on outputs: grayscale and solarize rates of augmented images match the spec."""
    n = 4000
    x = (torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.4 + 0.55).expand(n, 3, 8, 8)
    specs = [ViewSpec(size=8, **{**IDENTITY, "grayscale_prob": 0.3}),
             ViewSpec(size=8, **{**IDENTITY, "solarize_prob": 0.2})]
    aug = BatchedMultiViewAugment(specs, mean=(0, 0, 0), std=(1, 1, 1))
    v1, v2 = aug(x, torch.Generator().manual_seed(5))
    is_gray = (v1.amax(1) - v1.amin(1)).amax((1, 2)) < 1e-6
    is_sol = v2.amax((1, 2, 3)) < 0.5  # inputs are >= 0.55: solarized ones fall below 0.5
    for rate, p in ((is_gray.float().mean(), 0.3), (is_sol.float().mean(), 0.2)):
        assert abs(rate.item() - p) < 4 * math.sqrt(p * (1 - p) / n)


def test_batched_statistically_matches_pil_path():
    """Per-image channel means/stds of the two paths' outputs agree in distribution."""
    pil, u8 = _smooth_uint8_image(32)
    specs = get_view_specs("byol", 32)  # both views: with 3x3 blur and solarize
    pil_t = MultiViewPILTransform(specs, IMAGENET_MEAN, IMAGENET_STD)
    torch.manual_seed(0)
    n = 600
    ref = [torch.stack(v) for v in zip(*[pil_t(pil) for _ in range(n)])]
    ours = BatchedMultiViewAugment(specs)(u8[None].expand(4 * n, 3, 32, 32), torch.Generator().manual_seed(0))
    for r, o in zip(ref, ours):
        for stat in (lambda t: t.mean((2, 3)), lambda t: t.std((2, 3))):
            sr, so = stat(r), stat(o)  # [N, 3]
            se = sr.std(0) * math.sqrt(1 / n + 1 / (4 * n))
            assert ((sr.mean(0) - so.mean(0)).abs() <= 4 * se + 0.01).all()
            np.testing.assert_allclose(np.quantile(so.numpy(), [0.1, 0.5, 0.9], axis=0),
                                       np.quantile(sr.numpy(), [0.1, 0.5, 0.9], axis=0), atol=0.12)


# ---------------------------------------------------------------------------- API behaviour


def test_batched_shapes_normalisation_and_identity():
    u8 = torch.randint(0, 256, (4, 3, 12, 12), dtype=torch.uint8)
    aug = BatchedMultiViewAugment([ViewSpec(size=12, **IDENTITY)] * 2)
    v1, v2 = aug(u8, torch.Generator().manual_seed(0))
    expected = TVF.normalize(u8.float() / 255, IMAGENET_MEAN, IMAGENET_STD)
    assert v1.dtype == torch.float32 and v1.shape == (4, 3, 12, 12)
    torch.testing.assert_close(v1, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(v2, expected, atol=1e-5, rtol=0)
    out = BatchedMultiViewAugment(get_view_specs("byol_cifar", 8))(u8, torch.Generator().manual_seed(0))
    assert [tuple(o.shape) for o in out] == [(4, 3, 8, 8)] * 2 and all(torch.isfinite(o).all() for o in out)


def test_batched_precropped_inputs():
    specs = [ViewSpec(size=10, **IDENTITY), ViewSpec(size=10, **{**IDENTITY, "flip_prob": 1.0})]
    aug = BatchedMultiViewAugment(specs, mean=(0, 0, 0), std=(1, 1, 1), crop=False)
    views = torch.randint(0, 256, (3, 2, 3, 10, 10), dtype=torch.uint8)
    for inp in (views, list(views.unbind(1))):
        a, b = aug(inp, torch.Generator().manual_seed(0))
        torch.testing.assert_close(a, views[:, 0].float() / 255)
        torch.testing.assert_close(b, views[:, 1].float().flip(-1) / 255)
    with pytest.raises(ValueError):
        aug(torch.zeros(3, 2, 3, 12, 12, dtype=torch.uint8))


def test_determinism_and_generator():
    u8 = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    aug = BatchedMultiViewAugment(get_view_specs("byol", 32))
    a = aug(u8, torch.Generator().manual_seed(7))
    b = aug(u8, torch.Generator().manual_seed(7))
    c = aug(u8, torch.Generator().manual_seed(8))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])
    assert not torch.equal(a[0], a[1])  # views differ
    torch.manual_seed(0)
    assert len(aug(u8)) == 2  # global RNG when no generator


def test_pil_paths_shapes_and_normalisation():
    pil, u8 = _smooth_uint8_image(40)
    views = MultiViewPILTransform(get_view_specs("byol", 24), IMAGENET_MEAN, IMAGENET_STD)(pil)
    assert len(views) == 2 and all(v.shape == (3, 24, 24) and v.dtype == torch.float32 for v in views)
    ident = MultiViewPILTransform([ViewSpec(size=40, **IDENTITY)], (0.5,) * 3, (0.25,) * 3)(pil)[0]
    torch.testing.assert_close(ident, (u8.float() / 255 - 0.5) / 0.25)
    crops = CropOnlyTransform(get_view_specs("byol", 16))(pil)
    assert crops.shape == (2, 3, 16, 16) and crops.dtype == torch.uint8
    ev = build_eval_transform(224, 256, IMAGENET_MEAN, IMAGENET_STD)(pil.resize((300, 400)))
    assert ev.shape == (3, 224, 224)
    ev0 = build_eval_transform(40, 0, (0.5,) * 3, (0.25,) * 3)(pil)
    torch.testing.assert_close(ev0, ident)


def test_view_params_to_device_roundtrip():
    p = sample_view_params(ViewSpec(size=8), 4, (8, 8), torch.Generator().manual_seed(0))
    q = p.to("cpu")
    assert isinstance(q, ViewParams) and torch.equal(q.boxes, p.boxes)
    assert dataclasses.replace(p, boxes=None).to("cpu").boxes is None


# ---------------------------------------------------------------------------- multi-crop


def test_multicrop_preset_and_helper():
    from ssl_zoo.data.transforms import multi_crop

    specs = get_view_specs("byol_multicrop", 224)
    byol = get_view_specs("byol", 224)
    assert [s.size for s in specs] == [224, 224] + [96] * 6  # SwAV 2x224 + 6x96
    for g, b in zip(specs[:2], byol):
        assert g.crop_scale == (0.14, 1.0) and dataclasses.replace(g, crop_scale=b.crop_scale) == b
    for s in specs[2:]:
        assert s.crop_scale == (0.05, 0.14) and s.blur_prob == 0.5 and s.solarize_prob == 0.0
        assert s.blur_kernel_size == 9 and s.jitter_prob == 0.8 and s.grayscale_prob == 0.2
    assert [s.size for s in get_view_specs("byol_multicrop", 64)] == [64, 64] + [27] * 6
    assert len(multi_crop(byol, 0, 96)) == 2 and len(multi_crop(byol, 10, 96)) == 12
    over = apply_overrides(get_view_specs("byol_multicrop", 224), {"SOLARIZE_PROB": 0.0})  # scalars broadcast to all views
    assert all(s.solarize_prob == 0.0 for s in over)


def test_multicrop_batched_views_of_different_sizes():
    specs = get_view_specs("byol_multicrop", 48)  # 48 global, 21 local
    u8 = torch.randint(0, 256, (5, 3, 40, 56), dtype=torch.uint8)
    out = BatchedMultiViewAugment(specs)(u8, torch.Generator().manual_seed(0))
    assert [tuple(o.shape) for o in out] == [(5, 3, 48, 48)] * 2 + [(5, 3, 21, 21)] * 6
    assert all(torch.isfinite(o).all() for o in out)
    # Pre-cropped path: workers' CropOnlyTransform returns a list per image, collated to V batches.
    pil, _ = _smooth_uint8_image(60)
    crops = CropOnlyTransform(specs)(pil)
    assert isinstance(crops, list) and [tuple(c.shape) for c in crops] == [(3, 48, 48)] * 2 + [(3, 21, 21)] * 6
    batch = torch.utils.data.default_collate([crops, crops, crops])
    out = BatchedMultiViewAugment(specs, crop=False)(batch, torch.Generator().manual_seed(0))
    assert [tuple(o.shape) for o in out] == [(3, 3, 48, 48)] * 2 + [(3, 3, 21, 21)] * 6
    views = MultiViewPILTransform(specs, IMAGENET_MEAN, IMAGENET_STD)(pil)
    assert [tuple(v.shape) for v in views] == [(3, 48, 48)] * 2 + [(3, 21, 21)] * 6


def test_multicrop_local_crop_areas_follow_the_spec():
    specs = get_view_specs("byol_multicrop", 224)
    params = BatchedMultiViewAugment(specs).sample_params(4000, (375, 500), torch.Generator().manual_seed(0))
    for spec, p in ((specs[0], params[0]), (specs[2], params[2])):
        box = p.boxes.float()  # [B, 4] = (top, left, height, width)
        area = box[:, 2] * box[:, 3] / (375 * 500)
        lo, hi = spec.crop_scale
        assert area.min() >= lo - 0.01 and area.max() <= hi + 0.01
    # Local crops are never rejected (small) -> area ~ U[0.05, 0.14]; large global ones are,
    # as in torchvision (its distribution is tested in test_crop_params_distribution_...).
    assert abs(area.mean().item() - 0.095) < 0.003 and abs(area.std().item() - 0.09 / math.sqrt(12)) < 0.003


# ---------------------------------------------------------------------------- sparse crop, chunking


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_per_sample_resized_crop_matches_torchvision_and_dense(interpolation):
    x = _images(b=3, h=120, w=150)
    boxes = torch.tensor([[0, 0, 120, 150], [5, 7, 30, 20], [10, 30, 100, 100]])  # shrink and enlarge
    flip = torch.tensor([False, True, False])
    assert geometry.sparse_resize_pays(x, 64) and not geometry.sparse_resize_pays(x[..., :32, :32], 32)
    ours = geometry.resized_crop(x, boxes, 64, interpolation, flip=flip)  # dispatches to the per-sample path
    dense = torch.matmul(  # the dense matrices, forced
        geometry.resize_weights(boxes[:, 0], boxes[:, 2], 120, 64, interpolation)[:, None],
        torch.bmm(x.reshape(3, 360, 150), geometry.resize_weights(boxes[:, 1], boxes[:, 3], 150, 64, interpolation,
                                                            flip).transpose(1, 2)).view(3, 3, 120, 64))
    torch.testing.assert_close(ours, dense, atol=1e-5, rtol=0)
    for b, (top, left, h, w) in enumerate(boxes.tolist()):
        ref = TVF.resized_crop(x[b], top, left, h, w, [64, 64], InterpolationMode(interpolation), antialias=True)
        torch.testing.assert_close(ours[b], TVF.hflip(ref) if flip[b] else ref, atol=1e-6, rtol=0)


def test_per_sample_uint8_resized_crop_close_to_pil():
    pil, u8 = _smooth_uint8_image(96)
    boxes = torch.tensor([[0, 0, 96, 96], [5, 7, 40, 50], [10, 3, 80, 60]])
    ours = geometry.resized_crop_per_sample(u8[None].repeat(3, 1, 1, 1), boxes, 48, "bicubic")
    assert ours.dtype == torch.uint8
    for b, (top, left, h, w) in enumerate(boxes.tolist()):
        ref = TVF.pil_to_tensor(TVF.resized_crop(pil, top, left, h, w, [48, 48], InterpolationMode.BICUBIC))
        assert (ours[b].float() - ref.float()).abs().max() <= 2  # both round to uint8 after each pass


def test_chunked_augmentation_equals_whole_batch(monkeypatch):
    """CPU chunking and thread sharding change nothing; the uint8 sparse crop ~ the float one."""
    import ssl_zoo.data.transforms.batched as batched

    u8 = (_images(b=7, h=120, w=150, seed=2) * 255).round().to(torch.uint8)
    specs = get_view_specs("byol", 64)
    aug = BatchedMultiViewAugment(specs)
    whole = aug(u8, torch.Generator().manual_seed(0))
    monkeypatch.setattr(batched, "_CPU_CHUNK_BYTES", 2 * 3 * 64 * 64 * 4)  # chunks of 2 samples
    chunked = aug(u8, torch.Generator().manual_seed(0))
    for a, b in zip(whole, chunked):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    torch.set_num_threads(2)  # batch sharded over 2 Python threads
    try:
        sharded = aug(u8, torch.Generator().manual_seed(0))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    for a, b in zip(whole, sharded):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    from_float = aug(u8.float() / 255, torch.Generator().manual_seed(0))  # float source: float resize
    for a, b in zip(whole, from_float):
        # uint8 resize rounds (and clips noise overshoot) after each pass, like PIL
        assert (a - b).abs().mean() < 0.05 / 0.225


@pytest.mark.parametrize("name", AUGMENTATION_REGISTRY.names())
def test_every_preset_runs_in_both_backends(name):
    """Any registered preset: valid ViewSpecs, and both backends give one normalised view per spec at its size."""
    specs = get_view_specs(name, 16)
    assert specs and all(isinstance(s, ViewSpec) for s in specs)
    u8 = torch.randint(0, 256, (3, 3, 20, 20), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    views = BatchedMultiViewAugment(specs)(u8, torch.Generator().manual_seed(0))
    assert [tuple(v.shape) for v in views] == [(3, 3, s.size, s.size) for s in specs]
    assert all(torch.isfinite(v).all() for v in views)
    pil = MultiViewPILTransform(specs, IMAGENET_MEAN, IMAGENET_STD)(Image.fromarray(u8[0].permute(1, 2, 0).numpy()))
    assert [tuple(v.shape) for v in pil] == [(3, s.size, s.size) for s in specs]
