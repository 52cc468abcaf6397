"""Per-sample colour ops on batches: blends (brightness, contrast, saturation), hue, grayscale,
solarize, and the colour jitter that applies them in a random order per sample.

Every op takes float images ``x: [B, 3, H, W]`` in [0, 1] and per-sample parameters of
shape ``[B]``, so one call augments a whole batch with independent random parameters. Pure
functions: the random parameters come from the caller. Two jitter semantics:

* ``"torchvision"``: ``torchvision.transforms.functional``'s single-image tensor ops (same
  formulas, same clamping): the blends of ``adjust_brightness_contrast_saturation``.
* ``"tf"``: the official BYOL code (``byol/utils/augmentations.py``, = ``tf.image``, also
  SimCLR v1): ``adjust_brightness_tf`` (additive), ``adjust_contrast_tf`` (per-channel
  mean), ``adjust_saturation_tf`` (HSV saturation scaled, clipped to [0, 1]).

Hue (HSV rotation) is the same op in both.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .per_sample import apply_where

__all__ = ["BRIGHTNESS", "CONTRAST", "SATURATION", "HUE", "JITTER_OPS", "rgb_to_grayscale",
           "adjust_brightness_contrast_saturation", "adjust_brightness_tf", "adjust_contrast_tf",
           "adjust_saturation_tf", "adjust_hue", "color_jitter", "solarize"]

# Colour-jitter op ids, as in torchvision's ColorJitter (fn_idx 0..3).
BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)
JITTER_OPS = ("brightness", "contrast", "saturation", "hue")

# ITU-R 601-2 luma, as torchvision (and TF) use; PIL's "L" uses 299/587/114 / 1000.
_LUMA = (0.2989, 0.587, 0.114)


def _per_sample(factor: Tensor, x: Tensor) -> Tensor:
    """``[B]`` -> ``[B, 1, 1, 1]`` on ``x``'s device and dtype."""
    return factor.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


def rgb_to_grayscale(x: Tensor) -> Tensor:
    """Luma 0.2989 R + 0.587 G + 0.114 B.

    Args:
        x: ``[B, 3, H, W]``.

    Returns:
        ``[B, 1, H, W]`` (expand to 3 channels for a grayscale RGB image).
    """
    r, g, b = x.unbind(dim=-3)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(-3)


def adjust_brightness_contrast_saturation(x: Tensor, factor: Tensor, op: Tensor, inplace: bool = False) -> Tensor:
    """One of brightness (op 0), contrast (1) or saturation (2) per sample, in one pass.

    All three are ``_blend(x, ref, f) = clamp(f x + (1 - f) ref)`` with ref = 0, the
    grayscale mean, or the grayscale image, so a colour-jitter slot where each sample draws
    a different op costs one blend over the batch: ``clamp(f x + t)`` with the per-sample
    offset ``t = gray (1 - f) [op = 2] + (1 - f) mean [op = 1]``. The 0/1 factors are exact,
    so every sample gets torchvision's rounding; the grayscale image (and its mean) is only
    formed when some sample needs it. Samples with factor 1 are unchanged exactly.

    Args:
        x: ``[B, 3, H, W]``.
        factor: ``[B]``.
        op: int ``[B]`` in {0, 1, 2}.
        inplace: overwrite and return ``x`` (saves an allocation when the caller owns it).
    """
    op = op.to(factor.device)
    moved = factor != 1.0
    sat, con = (op == 2) & moved, (op == 1) & moved
    t = None
    if bool(sat.any()) or bool(con.any()):  # parameters usually live on the CPU: no device sync
        one_minus = 1.0 - factor.to(x.dtype)
        gray = rgb_to_grayscale(x)  # [B, 1, H, W], before x is overwritten
        mean = gray.mean(dim=(-3, -2, -1), keepdim=True) if bool(con.any()) else None
        t = gray.mul_(_per_sample(one_minus * sat.to(x.dtype), x))
        if mean is not None:
            t.add_(_per_sample(one_minus * con.to(x.dtype), x) * mean)
    f = _per_sample(factor, x)
    if t is None:
        y = x.mul_(f) if inplace else x * f
    else:  # t + f x in one pass (the 3-channel batch is the memory traffic that matters)
        y = torch.addcmul(t, x, f, out=x) if inplace else torch.addcmul(t, x, f)
    return y.clamp_(0.0, 1.0)


def adjust_brightness_tf(x: Tensor, delta: Tensor) -> Tensor:
    """``clip(x + delta)`` per sample (BYOL ``_random_brightness``, ``tf.image.adjust_brightness``).

    Args:
        x: ``[B, 3, H, W]``; overwritten.
        delta: ``[B]`` additive offsets (BYOL: U[-0.4, 0.4]).
    """
    return x.add_(_per_sample(delta, x)).clamp_(0.0, 1.0)


def adjust_contrast_tf(x: Tensor, factor: Tensor) -> Tensor:
    """``clip((x - m) f + m)`` with m the mean of each channel over the image (``tf.image.adjust_contrast``).

    torchvision's contrast uses one grayscale mean for all channels instead.

    Args:
        x: ``[B, 3, H, W]``; overwritten.
        factor: ``[B]``.
    """
    mean = x.mean(dim=(-2, -1), keepdim=True)  # [B, 3, 1, 1]
    return x.sub_(mean).mul_(_per_sample(factor, x)).add_(mean).clamp_(0.0, 1.0)


def adjust_saturation_tf(x: Tensor, factor: Tensor) -> Tensor:
    """HSV saturation ``s <- clip(s f, 0, 1)``, hue and value kept (``tf.image.adjust_saturation``).

    In RGB, with v = max, c = max - min and s = c / v, a channel is ``v (1 - s k)`` with
    k depending on the hue only, so the new channel is ``v - (v - x) min(f, v / c)``: no
    HSV round trip. Gray pixels (c = 0) are unchanged. torchvision's saturation instead
    blends with the grayscale image (and can leave the HSV cone's hue/value).

    Args:
        x: ``[B, 3, H, W]`` in [0, 1]; overwritten.
        factor: ``[B]`` >= 0.
    """
    maxc = x.amax(dim=-3, keepdim=True)
    cr = maxc - x.amin(dim=-3, keepdim=True)
    # v / c is finite for v <= 1 (tiny ~1e-38); where c = 0, v - x = 0 and the scale is moot.
    scale = torch.minimum(_per_sample(factor, x).expand_as(cr), maxc / cr.clamp(min=torch.finfo(x.dtype).tiny))
    return torch.sub(maxc, x, out=x).mul_(scale).neg_().add_(maxc).clamp_(0.0, 1.0)


def adjust_hue(x: Tensor, factor: Tensor) -> Tensor:
    """Rotate hue by ``factor`` turns per sample (torchvision ``adjust_hue`` on float tensors).

    RGB -> HSV, h <- (h + factor) mod 1, HSV -> RGB, fused so that s is never formed
    (equal to torchvision up to float rounding, ~1e-6). The way back uses that a channel
    with hue centre c (R 0, G 2, B 4 sextants) is ``v - cr clamp(d - 1, 0, 1)`` for the
    circular distance d = 3 - | |h - c| - 3 | (h in [0, 6)), which is
    ``clamp(2 min - v + cr | |h - c| - 3 |, min, v)``: three channels in a few
    full-tensor ops (the op count matters: the kernel is memory-bound).

    Args:
        x: ``[B, 3, H, W]`` in [0, 1].
        factor: ``[B]`` in [-0.5, 0.5].

    Returns:
        ``[B, 3, H, W]``.
    """
    maxc = x.amax(dim=-3, keepdim=True)  # [B, 1, H, W]
    minc = x.amin(dim=-3, keepdim=True)
    cr = maxc - minc
    r, g, b = x.split(1, dim=-3)
    # Branch weights 0/1 (torch.where and bool masks are slower on CPU): sign(c - max) + 1 is
    # 1 where channel c is the max, else 0 (c - max is exactly 0 only when equal); red wins
    # ties, then green.
    is_r = (r - maxc).sign_().add_(1.0)
    is_g = (g - maxc).sign_().add_(1.0).sub_(is_r).clamp_(min=0.0)
    is_b = 1.0 - is_r - is_g
    # Each pixel takes exactly one branch: 1 * value + 0 * others is exact.
    num = (g - b).mul_(is_r)
    num.addcmul_((b - r).add_(cr, alpha=2.0), is_g).addcmul_((r - g).add_(cr, alpha=4.0), is_b)
    # cr = 0 implies num = 0; any positive divisor gives hue 0 there.
    h6 = num.div_(cr.clamp(min=torch.finfo(x.dtype).tiny))
    h6.add_(_per_sample(6.0 * factor.to(x.dtype), x))
    # h mod 6 via floor (torch.remainder is not vectorised); the map below is continuous and
    # 6-periodic, so a result rounded onto 6 instead of 0 is harmless.
    h6.sub_(h6.div(6.0).floor_().mul_(6.0))
    d = (h6 - _HUE_CENTRES.to(device=x.device, dtype=x.dtype)).abs_().sub_(3.0).abs_()  # [B, 3, H, W]
    out = d.mul_(cr).add_(minc.mul(2.0).sub_(maxc))
    return out.clamp_(min=minc, max=maxc)


_HUE_CENTRES = torch.tensor([0.0, 2.0, 4.0]).view(1, 3, 1, 1)


_TF_OPS = {BRIGHTNESS: adjust_brightness_tf, CONTRAST: adjust_contrast_tf, SATURATION: adjust_saturation_tf}


def color_jitter(x: Tensor, apply: Tensor, factors: Tensor, order: Tensor, enabled: Tensor,
                 impl: str = "torchvision") -> Tensor:
    """Colour jitter per sample: the 4 ops in each sample's own random order.

    Vectorised over the per-sample order: in slot k every jittered sample gets op
    ``order[b, k]``. ``impl="torchvision"`` (``ColorJitter``): brightness/contrast/saturation
    are all blends, done in one pass with per-sample (factor, op) (factor 1 = untouched).
    ``impl="tf"`` (BYOL / SimCLR v1 official code): each of the three ops runs on the subset
    of samples that draw it. The costly hue goes through the subset of samples whose slot-k
    op is hue. Clamped to [0, 1] after each op (torchvision; BYOL ``jnp.clip`` in the loop).

    Args:
        x: float ``[B, 3, H, W]`` in [0, 1]; overwritten.
        apply: bool ``[B]``: samples that are jittered at all.
        factors: ``[B, 4]`` brightness factor ("torchvision") or offset ("tf"), contrast and
            saturation factors, hue shift (turns).
        order: int64 ``[B, 4]``: ``order[b, k]`` is the op (``BRIGHTNESS`` .. ``HUE``) of slot k.
        enabled: bool ``[4]``: ops switched on in the recipe (a disabled op is skipped).
        impl: "torchvision" or "tf" (``ViewSpec.jitter_impl``).

    Returns:
        ``[B, 3, H, W]`` (``x``, or a tensor replacing it).
    """
    if impl not in ("torchvision", "tf"):
        raise ValueError(f"color_jitter impl must be 'torchvision' or 'tf', got {impl!r}")
    if bool(apply.any()):
        for slot in range(4):
            op = order[:, slot]
            active = apply & enabled[op]
            blend = active & (op != HUE)
            if impl == "tf":
                for k, fn in _TF_OPS.items():
                    x = apply_where(x, active & (op == k), lambda xs, idx, k=k, fn=fn: fn(xs, factors[idx, k]))
            elif bool(blend.any()):
                factor = torch.where(blend, factors.gather(1, op[:, None]).squeeze(1), 1.0)
                x = adjust_brightness_contrast_saturation(x, factor, op.clamp(max=SATURATION), inplace=True)
            x = apply_where(x, active & (op == HUE), lambda xs, idx: adjust_hue(xs, factors[idx, HUE]))
    return x


def solarize(x: Tensor, threshold: float = 0.5) -> Tensor:
    """``x -> 1 - x`` where ``x >= threshold`` (torchvision ``solarize`` on float images).

    With the usual threshold 0.5 this is exactly ``min(x, 1 - x)``, one cheap op.
    """
    if threshold == 0.5:
        return torch.minimum(x, 1.0 - x)
    return torch.where(x >= threshold, 1.0 - x, x)
