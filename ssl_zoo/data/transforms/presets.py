"""Multi-view augmentation recipes as data: one ``ViewSpec`` per view.

A preset is a small function ``(image_size) -> list[ViewSpec]`` registered in
``AUGMENTATION_REGISTRY``. Both execution paths read the same specs:

* ``pil.MultiViewPILTransform``: torchvision/PIL ops per image (the reference);
* ``batched.BatchedMultiViewAugment``: vectorised ops on a whole batch with
  per-sample random parameters (the fast path).

Ablations (BYOL Sec. 5 / App. F, PROTOCOLS.md s.7: "no grayscale", "crop only", ...)
are config overrides of a preset (``INPUT.AUG.*``, applied to the specs by the config adapter
``ssl_zoo.data.build.view_specs_from_cfg``), not new code.

Examples:
    >>> specs = get_view_specs("byol", 224)
    >>> [s.blur_prob for s in specs]
    [1.0, 0.1]
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ssl_zoo.utils.registry import Registry

__all__ = [
    "ViewSpec",
    "JITTER_IMPLS",
    "AUGMENTATION_REGISTRY",
    "get_view_specs",
    "blur_kernel_size",
    "multi_crop",
]

AUGMENTATION_REGISTRY = Registry("AUGMENTATION")
AUGMENTATION_REGISTRY.__doc__ = "Multi-view augmentation presets: fn(image_size: int) -> list[ViewSpec]."

_INTERPOLATIONS = ("bilinear", "bicubic")
# Colour-jitter semantics (see ``ViewSpec.jitter_impl``).
JITTER_IMPLS = ("tf", "torchvision")


def blur_kernel_size(image_size: int, fraction: float) -> int:
    """Odd Gaussian-blur kernel side covering ``fraction`` of the image side.

    SimCLR/BYOL use ~10% of the side: ``int(0.1 * 224) = 22`` -> 23 (PROTOCOLS.md s.1),
    ``int(0.1 * 32) = 3`` at CIFAR scale. At least 3 so that a blur is a blur.
    """
    k = int(fraction * image_size)
    if k % 2 == 0:
        k += 1
    return max(k, 3)


@dataclass(frozen=True)
class ViewSpec:
    """Augmentation parameters of one view (applied in the order of the fields, BYOL App. B).

    Order: random resized crop, horizontal flip, colour jitter (4 ops, random order per
    image, clip after each), grayscale, Gaussian blur, solarize, then normalisation.

    Attributes:
        size: side of the square output crop (pixels).
        crop_scale: (min, max) fraction of the image area covered by the crop.
        crop_ratio: (min, max) aspect ratio w/h, sampled log-uniformly.
        flip_prob: probability of a horizontal flip.
        jitter_prob: probability of applying colour jitter (all four ops together).
        brightness, contrast, saturation: strengths; 0 disables the op. Contrast and
            saturation factors ~ U[max(0, 1-s), 1+s] in both implementations; brightness is
            a factor ~ U[max(0, 1-s), 1+s] ("torchvision") or an additive offset ~ U[-s, s] ("tf").
        hue: hue shift ~ U[-hue, hue] in turns (<= 0.5); 0 disables it.
        jitter_impl: whose colour jitter the four ops follow:
            "tf": the official BYOL code (``byol/utils/augmentations.py``) and SimCLR v1's TF
            code (``tf.image``): brightness ``x + delta``, contrast around the per-channel
            mean, saturation scaled in HSV; BYOL paper App. B ("shifted by a uniformly random
            offset").
            "torchvision": ``ColorJitter``: brightness ``f x``, contrast blended with the
            grayscale mean, saturation blended with the grayscale image (MoCo, SimSiam and
            Barlow Twins official code).
            Both: hue rotated in HSV, the ops in a random order per image, clip to [0, 1]
            after each.
        grayscale_prob: probability of luma grayscale (0.2989 R + 0.587 G + 0.114 B).
        blur_prob: probability of a Gaussian blur.
        blur_sigma: (min, max) of sigma ~ U, in output pixels.
        blur_kernel_fraction: kernel side as a fraction of ``size`` (made odd).
        solarize_prob: probability of x -> 1 - x where x >= 0.5.
        interpolation: "bicubic" or "bilinear" resize of the crop.
    """

    size: int = 224
    crop_scale: Tuple[float, float] = (0.08, 1.0)
    crop_ratio: Tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    flip_prob: float = 0.5
    jitter_prob: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_prob: float = 0.2
    blur_prob: float = 0.0
    blur_sigma: Tuple[float, float] = (0.1, 2.0)
    blur_kernel_fraction: float = 0.1
    solarize_prob: float = 0.0
    interpolation: str = "bicubic"
    jitter_impl: str = "torchvision"

    def __post_init__(self) -> None:
        # Coerce sequences (YAML lists) to tuples so specs stay hashable and comparable.
        for name in ("crop_scale", "crop_ratio", "blur_sigma"):
            value = tuple(float(v) for v in getattr(self, name))
            if len(value) != 2 or value[0] > value[1] or value[0] <= 0:
                raise ValueError(f"ViewSpec.{name} must be (min, max) with 0 < min <= max, got {value}")
            object.__setattr__(self, name, value)
        for name in ("flip_prob", "jitter_prob", "grayscale_prob", "blur_prob", "solarize_prob"):
            p = float(getattr(self, name))
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"ViewSpec.{name} must be a probability, got {p}")
            object.__setattr__(self, name, p)
        for name in ("brightness", "contrast", "saturation", "hue"):
            s = float(getattr(self, name))
            if s < 0:
                raise ValueError(f"ViewSpec.{name} must be >= 0, got {s}")
            object.__setattr__(self, name, s)
        if self.hue > 0.5:
            raise ValueError(f"ViewSpec.hue must be <= 0.5, got {self.hue}")
        if self.crop_scale[1] > 1.0:
            raise ValueError(f"ViewSpec.crop_scale max must be <= 1, got {self.crop_scale}")
        if self.interpolation not in _INTERPOLATIONS:
            raise ValueError(f"ViewSpec.interpolation must be one of {_INTERPOLATIONS}, got {self.interpolation!r}")
        if self.jitter_impl not in JITTER_IMPLS:
            raise ValueError(f"ViewSpec.jitter_impl must be one of {JITTER_IMPLS}, got {self.jitter_impl!r}")

    @property
    def blur_kernel_size(self) -> int:
        """Odd kernel side: 23 at 224 px, 3 at 32 px."""
        return blur_kernel_size(self.size, self.blur_kernel_fraction)

    def jitter_ranges(self) -> Dict[str, Optional[Tuple[float, float]]]:
        """Sampling ranges of the four ops; None for a disabled op.

        Brightness is a factor range (``"torchvision"``) or an additive offset range
        (``"tf"``, ``[-s, s]``); the others are the same for both.
        """
        def factor_range(s: float) -> Optional[Tuple[float, float]]:
            return (max(0.0, 1.0 - s), 1.0 + s) if s > 0 else None

        brightness = factor_range(self.brightness)
        if self.jitter_impl == "tf" and self.brightness > 0:
            brightness = (-self.brightness, self.brightness)
        return {
            "brightness": brightness,
            "contrast": factor_range(self.contrast),
            "saturation": factor_range(self.saturation),
            "hue": (-self.hue, self.hue) if self.hue > 0 else None,
        }


# ---------------------------------------------------------------------------- presets


@AUGMENTATION_REGISTRY.register()
def byol(image_size: int = 224) -> List[ViewSpec]:
    """BYOL views T and T' (Grill et al. 2020, App. B Table 6; PROTOCOLS.md s.1).

    Identical except blur p 1.0 / 0.1 and solarize p 0.0 / 0.2. Crop U[0.08, 1] area,
    log-uniform ratio [3/4, 4/3], bicubic; jitter (0.4, 0.4, 0.2, 0.1) with p 0.8;
    grayscale 0.2; blur sigma U[0.1, 2] with a 23 px kernel at 224. Colour jitter with the
    official code's TF semantics (``jitter_impl="tf"``: additive brightness, per-channel
    contrast, HSV saturation).
    """
    common = dict(jitter_impl="tf",
        size=image_size, crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3), flip_prob=0.5,
        jitter_prob=0.8, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1,
        grayscale_prob=0.2, blur_sigma=(0.1, 2.0), blur_kernel_fraction=0.1, interpolation="bicubic",
    )
    return [ViewSpec(blur_prob=1.0, solarize_prob=0.0, **common),
            ViewSpec(blur_prob=0.1, solarize_prob=0.2, **common)]


@AUGMENTATION_REGISTRY.register()
def byol_cifar(image_size: int = 32) -> List[ViewSpec]:
    """BYOL at CIFAR scale: the ``byol`` views WITHOUT Gaussian blur (p 0 / 0).

    Common practice at 32 px (e.g. solo-learn's CIFAR BYOL recipe; PROTOCOLS.md s.1 last
    line): a 3x3 blur destroys most of a 32 px image. Solarize stays 0.0 / 0.2.
    """
    return [dataclasses.replace(s, blur_prob=0.0) for s in byol(image_size)]


@AUGMENTATION_REGISTRY.register()
def symmetric_byol(image_size: int = 224) -> List[ViewSpec]:
    """BYOL ablation "symmetric views": blur 0.5 and solarize 0.2 in both views (PROTOCOLS.md s.7)."""
    return [dataclasses.replace(s, blur_prob=0.5, solarize_prob=0.2) for s in byol(image_size)]


@AUGMENTATION_REGISTRY.register()
def simclr(image_size: int = 224, strength: float = 1.0) -> List[ViewSpec]:
    """SimCLR (Chen et al. 2020, App. A; PROTOCOLS.md s.8), colour strength s = ``strength``.

    Jitter (0.8s, 0.8s, 0.8s, 0.2s) with p 0.8, grayscale 0.2, blur p 0.5 in both views
    (sigma U[0.1, 2], kernel 10% of the side), crop U[0.08, 1], bicubic, no solarize.
    Colour jitter as the v1 TF code (``data_util.color_jitter_rand``, ``impl="simclrv1"``):
    additive brightness, ``tf.image`` contrast and saturation (``jitter_impl="tf"``). SimCLR
    v2's code scales brightness instead (a factor); not offered here.
    """
    spec = ViewSpec(jitter_impl="tf",
        size=image_size, crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3), flip_prob=0.5,
        jitter_prob=0.8, brightness=0.8 * strength, contrast=0.8 * strength,
        saturation=0.8 * strength, hue=0.2 * strength, grayscale_prob=0.2, blur_prob=0.5,
        blur_sigma=(0.1, 2.0), blur_kernel_fraction=0.1, solarize_prob=0.0, interpolation="bicubic",
    )
    return [spec, spec]


@AUGMENTATION_REGISTRY.register()
def crop_flip(image_size: int = 224) -> List[ViewSpec]:
    """One view: random resized crop U[0.08, 1] (bicubic) + flip 0.5, no colour ops.

    The training augmentation of BYOL's linear and semi-supervised evaluation (App. C.1;
    PROTOCOLS.md s.3-4), and of the supervised baseline.
    """
    return [ViewSpec(size=image_size, crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3), flip_prob=0.5,
                     jitter_prob=0.0, grayscale_prob=0.0, blur_prob=0.0, solarize_prob=0.0,
                     interpolation="bicubic")]


@AUGMENTATION_REGISTRY.register()
def mocov2(image_size: int = 224) -> List[ViewSpec]:
    """MoCo v2 (Chen et al. 2020, "Improved baselines"; PROTOCOLS.md s.8).

    As in the official ``main_moco.py --aug-plus``: crop U[0.2, 1] (torchvision default
    bilinear), jitter ColorJitter(0.4, 0.4, 0.4, 0.1) with p 0.8, grayscale 0.2, blur p 0.5
    with sigma U[0.1, 2] (the original uses PIL's radius-only blur; here a 10%-of-side kernel
    as in SimCLR), flip 0.5, no solarize.
    """
    spec = ViewSpec(
        size=image_size, crop_scale=(0.2, 1.0), crop_ratio=(3 / 4, 4 / 3), flip_prob=0.5,
        jitter_prob=0.8, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1,
        grayscale_prob=0.2, blur_prob=0.5, blur_sigma=(0.1, 2.0), blur_kernel_fraction=0.1,
        solarize_prob=0.0, interpolation="bilinear",
    )
    return [spec, spec]


@AUGMENTATION_REGISTRY.register()
def mocov1(image_size: int = 224) -> List[ViewSpec]:
    """MoCo v1 (He et al. 2020; official ``main_moco.py`` without ``--aug-plus``).

    Crop U[0.2, 1] (bilinear), grayscale 0.2, ColorJitter(0.4, 0.4, 0.4, 0.4) always
    (p 1), flip 0.5, no blur, no solarize. The original applies grayscale BEFORE jitter;
    here the common order (jitter then grayscale) is used, a small distribution change.
    """
    spec = ViewSpec(
        size=image_size, crop_scale=(0.2, 1.0), crop_ratio=(3 / 4, 4 / 3), flip_prob=0.5,
        jitter_prob=1.0, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.4,
        grayscale_prob=0.2, blur_prob=0.0, solarize_prob=0.0, interpolation="bilinear",
    )
    return [spec, spec]


def multi_crop(global_specs: Sequence[ViewSpec], num_local: int, local_size: int,
               global_scale: Tuple[float, float] = (0.14, 1.0), local_scale: Tuple[float, float] = (0.05, 0.14),
               local_blur_prob: float = 0.5, local_solarize_prob: float = 0.0) -> List[ViewSpec]:
    """Multi-crop views: the global views (crop area ``global_scale``) + ``num_local`` small views.

    Multi-crop (Caron et al. 2020, SwAV Sec. 3.2): 2 global 224 px crops of area
    U[0.14, 1] and V local 96 px crops of area U[0.05, 0.14]; DINO (Caron et al. 2021)
    keeps BYOL's two global views and gives local views blur p 0.5, no solarize. Local
    views copy the first global view's colour recipe with those blur/solarize rates.
    Views come out globals first, then locals (methods compare locals to globals only).

    Args:
        global_specs: e.g. ``byol(224)``.
        num_local: number of local views V (>= 0).
        local_size: side of a local view (96 at 224).
        global_scale, local_scale: crop area ranges.
        local_blur_prob, local_solarize_prob: rates of the local views.

    Returns:
        ``len(global_specs) + num_local`` ViewSpecs (the view sizes differ: both training
        paths handle that, the batched one returns a list of differently sized batches).
    """
    if num_local < 0:
        raise ValueError(f"num_local must be >= 0, got {num_local}")
    globals_ = [dataclasses.replace(s, crop_scale=global_scale) for s in global_specs]
    local = dataclasses.replace(globals_[0], size=int(local_size), crop_scale=local_scale,
                                blur_prob=local_blur_prob, solarize_prob=local_solarize_prob)
    return globals_ + [local] * int(num_local)


@AUGMENTATION_REGISTRY.register()
def byol_multicrop(image_size: int = 224) -> List[ViewSpec]:
    """BYOL's two views as global crops + 6 local crops (SwAV's 2x224 + 6x96 geometry).

    Global: BYOL views T / T' with crop area U[0.14, 1]; local: 96 px (scaled as
    ``96/224 * image_size``, at least 8) crops of area U[0.05, 0.14], T's colour recipe with
    blur p 0.5 and no solarize (DINO). See :func:`multi_crop` for other counts and scales.
    """
    local_size = max(8, int(round(image_size * 96 / 224)))
    return multi_crop(byol(image_size), num_local=6, local_size=local_size)


def get_view_specs(name: str, image_size: int) -> List[ViewSpec]:
    """Build the preset ``name`` at ``image_size``.

    Config overrides (``INPUT.AUG.*``) are applied by the config adapter,
    ``ssl_zoo.data.build.view_specs_from_cfg``; this module only knows ViewSpecs.

    Args:
        name: key of ``AUGMENTATION_REGISTRY`` ("byol", "byol_cifar", "simclr", ...).
        image_size: side of the square output crops.

    Returns:
        One ``ViewSpec`` per view.
    """
    preset: Callable[[int], List[ViewSpec]] = AUGMENTATION_REGISTRY.get(name)
    return preset(int(image_size))
