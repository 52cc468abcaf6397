"""Training and evaluation transforms of BYOL's segmentation protocol (App. D.4).

Training: random scaling by a ratio in [0.5, 2.0] (image bilinear, labels nearest),
padding to the crop size (image with the mean, i.e. 0 after normalisation; labels with the
ignore label, so padding is never trained on), a random ``crop x crop`` window and a
horizontal flip with probability 0.5. Evaluation: the ``crop x crop`` central window of the
image padded the same way ("inference is performed on the [513, 513] central crop"; every
VOC image fits in 513, so this is the whole image).

``image_scale`` (1 in the paper) resizes every image and label map first, for CPU-budget
runs on small sets; scores are then computed at that resolution.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["SegTrainTransform", "SegEvalTransform", "to_tensors"]


def to_tensors(image: np.ndarray, label: np.ndarray, mean: Sequence[float], std: Sequence[float]
               ) -> Tuple[torch.Tensor, torch.Tensor]:
    """``uint8 [H, W, 3]``, ``uint8 [H, W]`` -> normalised ``float [3, H, W]``, ``int64 [H, W]``."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255)
    x = (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    return x, torch.from_numpy(np.ascontiguousarray(label)).long()


def _rescale(x: torch.Tensor, y: torch.Tensor, s: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Image bilinear (antialiased when shrinking), labels nearest, both to ``round(size * s)``."""
    if s == 1:
        return x, y
    h, w = max(1, round(x.shape[1] * s)), max(1, round(x.shape[2] * s))
    x = F.interpolate(x[None], size=(h, w), mode="bilinear", align_corners=False, antialias=s < 1)[0]
    y = F.interpolate(y[None, None].float(), size=(h, w), mode="nearest")[0, 0].long()
    return x, y


def _pad_to(x: torch.Tensor, y: torch.Tensor, size: int, ignore: int) -> Tuple[torch.Tensor, torch.Tensor]:
    ph, pw = max(size - x.shape[-2], 0), max(size - x.shape[-1], 0)
    if ph or pw:  # bottom / right, as DeepLab's reference pipeline
        x = F.pad(x, (0, pw, 0, ph), value=0.0)
        y = F.pad(y, (0, pw, 0, ph), value=ignore)
    return x, y


class SegTrainTransform:
    """``(image, label) -> (float [3, crop, crop], int64 [crop, crop])`` with scale / pad / crop / flip."""

    def __init__(self, crop: int, mean: Sequence[float], std: Sequence[float],
                 scale_range: Tuple[float, float] = (0.5, 2.0), ignore_index: int = 255,
                 image_scale: float = 1.0) -> None:
        self.crop, self.mean, self.std, self.scale_range, self.ignore = crop, mean, std, scale_range, ignore_index
        self.image_scale = image_scale

    def __call__(self, image: np.ndarray, label: np.ndarray):
        x, y = to_tensors(image, label, self.mean, self.std)
        lo, hi = self.scale_range
        x, y = _rescale(x, y, self.image_scale * (lo + (hi - lo) * torch.rand(()).item()))
        x, y = _pad_to(x, y, self.crop, self.ignore)
        top = int(torch.randint(0, x.shape[1] - self.crop + 1, ()).item())
        left = int(torch.randint(0, x.shape[2] - self.crop + 1, ()).item())
        x, y = x[:, top:top + self.crop, left:left + self.crop], y[top:top + self.crop, left:left + self.crop]
        if torch.rand(()).item() < 0.5:
            x, y = x.flip(-1), y.flip(-1)
        return x.contiguous(), y.contiguous()


class SegEvalTransform:
    """``(image, label) -> (float [3, crop, crop], int64 [crop, crop])``: pad, then the central window."""

    def __init__(self, crop: int, mean: Sequence[float], std: Sequence[float], ignore_index: int = 255,
                 image_scale: float = 1.0) -> None:
        self.crop, self.mean, self.std, self.ignore, self.image_scale = crop, mean, std, ignore_index, image_scale

    def __call__(self, image: np.ndarray, label: np.ndarray):
        x, y = _rescale(*to_tensors(image, label, self.mean, self.std), self.image_scale)
        x, y = _pad_to(x, y, self.crop, self.ignore)
        top, left = (x.shape[1] - self.crop) // 2, (x.shape[2] - self.crop) // 2
        return x[:, top:top + self.crop, left:left + self.crop].contiguous(), \
            y[top:top + self.crop, left:left + self.crop].contiguous()
