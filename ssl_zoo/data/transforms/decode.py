"""Decode encoded image files on the training device (the ``INPUT.BACKEND "gpu"`` path).

JPEGs are decoded with ``torchvision.io.decode_jpeg`` on a list of files at once (nvJPEG's
batched decoder on a CUDA device; libjpeg-turbo on the CPU, the library PIL uses, so the
pixels equal PIL's ``Image.open(f).convert("RGB")``); other formats (PNG, ...) fall back to
``torchvision.io.decode_image`` on the CPU, one by one. The decoded images, of different
sizes, are zero-padded into one uint8 batch with their sizes, which
``BatchedMultiViewAugment(image_sizes=...)`` crops inside.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor
from torchvision.io import ImageReadMode, decode_image, decode_jpeg

__all__ = ["is_jpeg", "decode_images", "pad_to_batch"]

_JPEG_MAGIC = (0xFF, 0xD8, 0xFF)


def is_jpeg(data: Tensor) -> bool:
    """Whether the uint8 file contents start with the JPEG SOI marker."""
    return data.numel() >= 3 and tuple(data[:3].tolist()) == _JPEG_MAGIC


def _decode_one(data: Tensor, device: torch.device) -> Tensor:
    if is_jpeg(data):
        return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    return decode_image(data, mode=ImageReadMode.RGB).to(device)


def decode_images(encoded: Sequence[Tensor], device: Union[str, torch.device] = "cpu",
                  names: Optional[Sequence[str]] = None) -> List[Tensor]:
    """Decode files to RGB on ``device``.

    Args:
        encoded: uint8 ``[N_i]`` file contents (CPU tensors, e.g. ``torchvision.io.read_file``).
        device: where to decode JPEGs (CUDA: nvJPEG, batched) and put every image.
        names: optional file names, used only in the error message.

    Returns:
        uint8 ``[3, H_i, W_i]`` per file, on ``device``.

    Raises:
        ValueError: naming the first file that cannot be decoded.
    """
    device = torch.device(device)
    jpeg = [i for i, d in enumerate(encoded) if is_jpeg(d)]
    out: List[Optional[Tensor]] = [None] * len(encoded)
    try:
        if jpeg:
            decoded = decode_jpeg([encoded[i] for i in jpeg], mode=ImageReadMode.RGB, device=device)
            for i, img in zip(jpeg, decoded):
                out[i] = img
        for i, d in enumerate(encoded):
            if out[i] is None:
                out[i] = _decode_one(d, device)
    except RuntimeError:
        # Find the culprit one by one, so the message names the file.
        for i, d in enumerate(encoded):
            try:
                _decode_one(d, device)
            except RuntimeError as e:
                name = names[i] if names is not None else f"item {i} of the batch"
                raise ValueError(f"Cannot decode image {name}: {e}") from e
        raise
    return out  # type: ignore[return-value]


def pad_to_batch(images: Sequence[Tensor]) -> Tuple[Tensor, Tensor]:
    """Zero-pad ``[3, H_i, W_i]`` images to one ``[B, 3, max H, max W]`` batch.

    Returns:
        (uint8 ``[B, 3, H, W]`` on the images' device, int64 ``[B, 2]`` sizes (H_i, W_i) on the CPU).
    """
    sizes = torch.tensor([tuple(img.shape[-2:]) for img in images], dtype=torch.int64)
    hmax, wmax = (int(v) for v in sizes.max(dim=0).values)
    batch = torch.zeros((len(images), 3, hmax, wmax), dtype=images[0].dtype, device=images[0].device)
    for b, img in enumerate(images):
        batch[b, :, : img.shape[-2], : img.shape[-1]] = img
    return batch, sizes
