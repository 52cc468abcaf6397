"""Per-image (PIL / torchvision) transforms: the reference training path and evaluation.

``MultiViewPILTransform`` is the textbook implementation of a list of ``ViewSpec``s with
torchvision.transforms, run in DataLoader workers. ``CropOnlyTransform`` does only the
random resized crop in the workers (decoding + cropping large JPEGs is what must happen
per image) and leaves the rest to ``batched.BatchedMultiViewAugment`` on the device.
"""
from __future__ import annotations

from typing import List, Sequence, Union

import torch
from PIL import Image
from torch import Tensor
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

from .colour import (BRIGHTNESS, CONTRAST, HUE, SATURATION, adjust_brightness_tf, adjust_contrast_tf, adjust_hue,
                     adjust_saturation_tf)
from .presets import ViewSpec

__all__ = ["view_transform", "TFColorJitter", "MultiViewPILTransform", "CropOnlyTransform", "build_eval_transform"]

_INTERP = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}


def _crop(spec: ViewSpec) -> T.RandomResizedCrop:
    return T.RandomResizedCrop(spec.size, scale=spec.crop_scale, ratio=spec.crop_ratio,
                               interpolation=_INTERP[spec.interpolation])


class TFColorJitter(torch.nn.Module):
    """BYOL's / SimCLR v1's colour jitter on one float image ``[3, H, W]`` in [0, 1].

    The official ``byol/utils/augmentations.py`` ``_color_transform``: brightness
    ``x + U[-b, b]``, contrast ``U[1-c, 1+c]`` around the per-channel mean, saturation
    ``U[1-s, 1+s]`` scaling HSV saturation, hue ``U[-h, h]`` turns; the four in a random
    order, clipped to [0, 1] after each. Draws from torch's global RNG, as ``ColorJitter``.

    Args:
        ranges: ``ViewSpec.jitter_ranges()`` of a ``jitter_impl="tf"`` spec (None = op off).
    """

    def __init__(self, ranges) -> None:
        super().__init__()
        self.ranges = [ranges["brightness"], ranges["contrast"], ranges["saturation"], ranges["hue"]]
        self.fns = {BRIGHTNESS: adjust_brightness_tf, CONTRAST: adjust_contrast_tf,
                    SATURATION: adjust_saturation_tf, HUE: adjust_hue}

    def forward(self, img: Tensor) -> Tensor:
        x = img.unsqueeze(0).clone()
        for op in torch.randperm(4).tolist():
            r = self.ranges[op]
            if r is not None:
                value = torch.empty(1).uniform_(r[0], r[1])
                x = self.fns[op](x, value).clamp_(0.0, 1.0)
        return x.squeeze(0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(brightness/contrast/saturation/hue={self.ranges})"


def view_transform(spec: ViewSpec, mean: Sequence[float], std: Sequence[float]) -> T.Compose:
    """torchvision pipeline of one view: PIL image -> normalised float ``[3, S, S]``.

    Order (BYOL App. B): crop, flip, jitter, grayscale, blur, solarize, ToTensor, Normalize.
    Ops with probability 0 are left out. ``ColorJitter`` already applies its four ops in a
    random order and clips after each; ``RandomSolarize(128)`` on uint8 PIL images inverts
    pixels >= 128, i.e. x >= 0.5 on [0, 1]. With ``jitter_impl="tf"`` the image becomes a
    float tensor before the jitter (as in the official code, which works in float), and
    grayscale, blur and solarize (threshold 0.5) run on that tensor.
    """
    ops: List = [_crop(spec)]
    if spec.flip_prob > 0:
        ops.append(T.RandomHorizontalFlip(spec.flip_prob))
    tf = spec.jitter_impl == "tf"
    if tf:
        ops.append(T.ToTensor())
    if spec.jitter_prob > 0 and any((spec.brightness, spec.contrast, spec.saturation, spec.hue)):
        if tf:
            jitter = TFColorJitter(spec.jitter_ranges())
        else:
            jitter = T.ColorJitter(spec.brightness, spec.contrast, spec.saturation, spec.hue)
        ops.append(T.RandomApply([jitter], p=spec.jitter_prob))
    if spec.grayscale_prob > 0:
        ops.append(T.RandomGrayscale(spec.grayscale_prob))
    if spec.blur_prob > 0:
        blur = T.GaussianBlur(spec.blur_kernel_size, sigma=spec.blur_sigma)
        ops.append(T.RandomApply([blur], p=spec.blur_prob))
    if spec.solarize_prob > 0:
        ops.append(T.RandomSolarize(threshold=0.5 if tf else 128, p=spec.solarize_prob))
    if not tf:
        ops.append(T.ToTensor())
    ops.append(T.Normalize(mean, std))
    return T.Compose(ops)


class MultiViewPILTransform:
    """PIL image -> list of V normalised float ``[3, S, S]`` tensors, one per ``ViewSpec``.

    Args:
        specs: one ViewSpec per view.
        mean, std: normalisation (ImageNet statistics, PROTOCOLS.md s.1).

    Examples:
        >>> t = MultiViewPILTransform(get_view_specs("byol", 224), IMAGENET_MEAN, IMAGENET_STD)
        >>> v1, v2 = t(pil_image)
    """

    def __init__(self, specs: Sequence[ViewSpec], mean: Sequence[float], std: Sequence[float]) -> None:
        self.specs = list(specs)
        self.transforms = [view_transform(s, mean, std) for s in self.specs]

    def __call__(self, image: Image.Image) -> List[Tensor]:
        image = image.convert("RGB") if image.mode != "RGB" else image
        return [t(image) for t in self.transforms]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(\n" + "\n".join(repr(t) for t in self.transforms) + ")"


class CropOnlyTransform:
    """PIL image -> uint8 crops for the batched path: ``[V, 3, S, S]`` (a list if sizes differ).

    Each view gets its own random resized crop (PIL resize with the spec's interpolation,
    antialiased like the reference path); everything else is done by
    ``BatchedMultiViewAugment(specs, crop=False)``.
    """

    def __init__(self, specs: Sequence[ViewSpec]) -> None:
        self.specs = list(specs)
        self.crops = [_crop(s) for s in self.specs]
        self.to_tensor = T.PILToTensor()

    def __call__(self, image: Image.Image) -> Union[Tensor, List[Tensor]]:
        image = image.convert("RGB") if image.mode != "RGB" else image
        views = [self.to_tensor(c(image)) for c in self.crops]
        if len({v.shape for v in views}) == 1:
            return torch.stack(views)
        return views


def build_eval_transform(image_size: int, resize: int, mean: Sequence[float], std: Sequence[float]) -> T.Compose:
    """Evaluation transform: bicubic resize of the shorter side to ``resize``, centre crop.

    256 -> 224 at ImageNet scale (PROTOCOLS.md s.1). ``resize`` 0 skips the resize (small
    images, e.g. CIFAR at 32: the centre crop is then a no-op when sizes already match).

    Returns:
        PIL image -> normalised float ``[3, image_size, image_size]``.
    """
    ops: List = []
    if resize:
        ops.append(T.Resize(resize, interpolation=InterpolationMode.BICUBIC))
    ops += [T.CenterCrop(image_size), T.ToTensor(), T.Normalize(mean, std)]
    return T.Compose(ops)
