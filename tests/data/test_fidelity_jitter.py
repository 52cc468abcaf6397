"""BYOL's TF-style colour jitter (issue #12 item 1) against a numpy transcription of the official code.

Reference: deepmind-research ``byol/utils/augmentations.py`` (``_random_brightness``:
``x + delta``; ``_random_contrast`` -> ``tf.image.adjust_contrast``: ``(x - mean_c) f + mean_c``
with the mean of each channel over the image; ``_random_saturation`` / ``_random_hue``:
RGB -> HSV, ``s <- clip(s f, 0, 1)`` / ``h <- (h + delta) mod 1``, HSV -> RGB; the four ops in
a random order, ``clip(x, 0, 1)`` after each). HSV is done per pixel with ``colorsys``.
"""
import colorsys
import os

import numpy as np
import pytest
import torch

from ssl_zoo.config import get_cfg
from ssl_zoo.data.build import view_specs_from_cfg
from ssl_zoo.data.transforms import ViewSpec, get_view_specs, sample_view_params
from ssl_zoo.data.transforms.colour import (adjust_brightness_tf, adjust_contrast_tf, adjust_hue,
                                            adjust_saturation_tf, color_jitter)
from ssl_zoo.data.transforms.pil import TFColorJitter, view_transform

torch.set_num_threads(1)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ----------------------------------------------------------------- naive reference (one image, [3, H, W])
def ref_brightness(x, delta):
    return np.clip(x + delta, 0.0, 1.0)


def ref_contrast(x, f):
    mean = x.mean(axis=(1, 2), keepdims=True)
    return np.clip((x - mean) * f + mean, 0.0, 1.0)


def _hsv_map(x, fn):
    out = np.empty_like(x)
    for i in range(x.shape[1]):
        for j in range(x.shape[2]):
            h, s, v = colorsys.rgb_to_hsv(*x[:, i, j])
            out[:, i, j] = colorsys.hsv_to_rgb(*fn(h, s, v))
    return out


def ref_saturation(x, f):
    return np.clip(_hsv_map(x, lambda h, s, v: (h, min(max(s * f, 0.0), 1.0), v)), 0.0, 1.0)


def ref_hue(x, delta):
    return np.clip(_hsv_map(x, lambda h, s, v: ((h + delta) % 1.0, s, v)), 0.0, 1.0)


REF_OPS = [ref_brightness, ref_contrast, ref_saturation, ref_hue]


def images(b=4, size=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 3, size, size, generator=g, dtype=torch.float64).float()
    x[0, :, 0, 0] = 0.5  # a gray pixel (s = 0)
    x[-1, :, 1, 1] = 0.0  # black
    return x


@pytest.mark.parametrize("op,values", [
    (0, [-0.4, -0.1, 0.25, 0.4]),
    (1, [0.6, 1.0, 1.3, 1.4]),
    (2, [0.8, 1.0, 1.2, 5.0]),  # 5.0: saturation clipped at 1
    (3, [-0.1, 0.0, 0.05, 0.1]),
])
def test_each_tf_op_matches_official_formula(op, values):
    x = images()
    fn = [adjust_brightness_tf, adjust_contrast_tf, adjust_saturation_tf, adjust_hue][op]
    out = fn(x.clone(), torch.tensor(values)).numpy()
    for b, v in enumerate(values):
        np.testing.assert_allclose(out[b], REF_OPS[op](x[b].numpy().astype(np.float64), v), atol=2e-6)


def test_tf_brightness_differs_from_torchvision():
    """The official op is additive: a dark pixel moves by delta, not by delta * x."""
    x = torch.full((1, 3, 2, 2), 0.1)
    assert torch.allclose(adjust_brightness_tf(x.clone(), torch.tensor([0.3])), torch.full_like(x, 0.4))


def test_batched_tf_jitter_random_order_and_clip():
    """color_jitter(impl="tf"): each sample's own order, clip after each op (as the official loop)."""
    x = images(b=6, seed=1)
    g = torch.Generator().manual_seed(3)
    order = torch.rand(6, 4, generator=g).argsort(dim=1)
    factors = torch.stack([torch.empty(6).uniform_(-0.4, 0.4, generator=g),
                           torch.empty(6).uniform_(0.6, 1.4, generator=g),
                           torch.empty(6).uniform_(0.8, 1.2, generator=g),
                           torch.empty(6).uniform_(-0.1, 0.1, generator=g)], dim=1)
    apply = torch.tensor([True, True, False, True, True, True])
    enabled = torch.tensor([True, True, True, True])
    out = color_jitter(x.clone(), apply, factors, order, enabled, impl="tf").numpy()
    for b in range(6):
        want = x[b].numpy().astype(np.float64)
        if apply[b]:
            for op in order[b].tolist():
                want = REF_OPS[op](want, float(factors[b, op]))
        np.testing.assert_allclose(out[b], want, atol=5e-6)


def test_pil_path_tf_jitter_matches_reference():
    """TFColorJitter draws perm then U(range) per op from torch's RNG; replay the draws in numpy."""
    x = images(b=1, seed=2)[0]
    ranges = get_view_specs("byol", 8)[0].jitter_ranges()
    assert ranges["brightness"] == (-0.4, 0.4)
    torch.manual_seed(11)
    out = TFColorJitter(ranges)(x).numpy()
    torch.manual_seed(11)
    want = x.numpy().astype(np.float64)
    keys = ["brightness", "contrast", "saturation", "hue"]
    for op in torch.randperm(4).tolist():
        lo, hi = ranges[keys[op]]
        want = REF_OPS[op](want, float(torch.empty(1).uniform_(lo, hi)))
    np.testing.assert_allclose(out, want, atol=5e-6)


def test_pil_view_transform_tf_runs_end_to_end():
    from PIL import Image
    img = Image.fromarray((np.random.RandomState(0).rand(12, 12, 3) * 255).astype(np.uint8))
    t = view_transform(get_view_specs("byol", 8)[1], (0.5,) * 3, (0.5,) * 3)
    assert any(isinstance(getattr(o, "transforms", [None])[0], TFColorJitter) for o in t.transforms)
    out = t(img)
    assert out.shape == (3, 8, 8) and torch.all(out.abs() <= 1.0 + 1e-6)


def test_sampled_tf_brightness_is_a_symmetric_offset():
    p = sample_view_params(get_view_specs("byol", 8)[0], 4000, None, torch.Generator().manual_seed(0))
    b = p.factors[:, 0]
    assert b.min() >= -0.4 and b.max() <= 0.4 and b.min() < -0.35 and b.max() > 0.35
    p = sample_view_params(ViewSpec(size=8), 4000, None, torch.Generator().manual_seed(0))
    assert p.factors[:, 0].min() >= 0.6  # torchvision factor U[0.6, 1.4]


def test_presets_declare_their_official_jitter():
    assert {s.jitter_impl for s in get_view_specs("byol", 32)} == {"tf"}
    assert {s.jitter_impl for s in get_view_specs("byol_cifar", 32)} == {"tf"}
    assert {s.jitter_impl for s in get_view_specs("simclr", 32)} == {"tf"}
    assert {s.jitter_impl for s in get_view_specs("mocov2", 32)} == {"torchvision"}
    assert {s.jitter_impl for s in get_view_specs("mocov1", 32)} == {"torchvision"}
    with pytest.raises(ValueError, match="jitter_impl"):
        ViewSpec(jitter_impl="pil")


@pytest.mark.parametrize("config,impl", [
    ("configs/byol/quickstart.yaml", "tf"),
    ("configs/byol/r50_1000ep.yaml", "tf"),
    ("configs/simclr/r50_1000ep.yaml", "tf"),
    ("configs/simclr/quickstart.yaml", "tf"),
    ("configs/mocov2/r50_200ep.yaml", "torchvision"),
    ("configs/mocov2/quickstart.yaml", "torchvision"),
    ("configs/simsiam/r50_100ep.yaml", "torchvision"),
    ("configs/simsiam/quickstart.yaml", "torchvision"),
    ("configs/barlow_twins/r50_1000ep.yaml", "torchvision"),
    ("configs/barlow_twins/quickstart.yaml", "torchvision"),
])
def test_configs_use_their_methods_jitter(config, impl):
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(ROOT, config))
    assert {s.jitter_impl for s in view_specs_from_cfg(cfg)} == {impl}
    cfg.INPUT.AUG.JITTER_IMPL = "torchvision"
    assert {s.jitter_impl for s in view_specs_from_cfg(cfg)} == {"torchvision"}
