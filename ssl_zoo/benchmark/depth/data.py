"""NYU v2 frames as BYOL's depth protocol feeds them (App. D.6; PROTOCOLS.md s.6).

Every 640x480 frame is downsampled by 0.5 (bilinear, antialiased) and centre-cropped to
304x228. Training frames are flipped with probability 0.5 (image and depth) and
colour-augmented: brightness (an additive change in [-0.1255, 0.1255] on [0, 1] images, as
TF's ``random_brightness``), saturation factor in [0.5, 1.5], hue shift in [-0.2, 0.2], then
grayscale with probability 0.3 (the order is ours; the paper lists the operations).
Training targets are the depth maps downsampled the same way (nearest, so invalid zeros
stay zeros) and cropped to 304x228; test targets are the full-resolution depths of the
same region (608x456), against which predictions are bilinearly upsampled, as the official
evaluation compares at the ground truth's resolution.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torch.utils.data import Dataset

from ssl_zoo.data.readers.nyu_depth import NYUDepthLabeled

__all__ = ["DepthAugment", "NYUDepthDataset", "centre_crop"]


def centre_crop(x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """The central ``size = (h, w)`` window of ``[..., H, W]``."""
    h, w = size
    if x.shape[-2] < h or x.shape[-1] < w:
        raise ValueError(f"cannot crop {tuple(x.shape[-2:])} to {size}")
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[..., top:top + h, left:left + w]


class DepthAugment:
    """Colour augmentation of one ``float [3, H, W]`` image in [0, 1] (BYOL App. D.6)."""

    def __init__(self, brightness: float = 0.1255, saturation: Tuple[float, float] = (0.5, 1.5), hue: float = 0.2,
                 grayscale_prob: float = 0.3) -> None:
        self.brightness, self.saturation, self.hue, self.grayscale_prob = brightness, saturation, hue, grayscale_prob

    @staticmethod
    def _uniform(lo: float, hi: float) -> float:
        return lo + (hi - lo) * torch.rand(()).item()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = (x + self._uniform(-self.brightness, self.brightness)).clamp_(0, 1)
        x = TF.adjust_saturation(x, self._uniform(*self.saturation))
        x = TF.adjust_hue(x, self._uniform(-self.hue, self.hue))
        if torch.rand(()).item() < self.grayscale_prob:
            x = TF.rgb_to_grayscale(x, num_output_channels=3)
        return x


class NYUDepthDataset(Dataset):
    """``(image float [3, 228, 304] normalised, depth float [1, h, w] metres, 0 = invalid)`` per frame.

    Args:
        frames: the labeled .mat reader.
        indices: frame indices (0-based) of this split.
        train: augment, and return the target at the input's resolution (else at full resolution).
        scale, crop: 0.5 and (228, 304) in the paper.
        augment: :class:`DepthAugment` for training (None: flips only).
    """

    def __init__(self, frames: NYUDepthLabeled, indices: Sequence[int], train: bool, mean: Sequence[float],
                 std: Sequence[float], scale: float = 0.5, crop: Tuple[int, int] = (228, 304),
                 augment: DepthAugment = None) -> None:
        self.frames, self.indices, self.train = frames, [int(i) for i in indices], train
        self.mean, self.std = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
        self.scale, self.crop, self.augment = scale, tuple(crop), augment
        self.full_crop = (round(self.crop[0] / scale), round(self.crop[1] / scale))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        rgb, depth = self.frames.frame(self.indices[i])
        x = torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255)
        d = torch.from_numpy(np.nan_to_num(depth, nan=0.0, posinf=0.0, neginf=0.0))[None]
        size = (round(x.shape[1] * self.scale), round(x.shape[2] * self.scale))
        x = centre_crop(F.interpolate(x[None], size=size, mode="bilinear", align_corners=False,
                                      antialias=self.scale < 1)[0].clamp_(0, 1), self.crop)
        if self.train:
            d = centre_crop(F.interpolate(d[None], size=size, mode="nearest")[0], self.crop)
            if torch.rand(()).item() < 0.5:
                x, d = x.flip(-1), d.flip(-1)
            if self.augment is not None:
                x = self.augment(x)
        else:
            d = centre_crop(d, self.full_crop)
        return ((x - self.mean) / self.std).contiguous(), d.contiguous()
