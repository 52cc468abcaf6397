"""Embeddings of a folder of images: the backbone's features for every image, written to disk.

The step after pretraining that users do first (lightly's ``lightly-embed``): every image under
a folder (flat, nested or a file list, as pretraining reads it) goes through the frozen
backbone at the benchmark's evaluation transform (shorter side to ``S / BENCHMARK.CROP_FRACTION``,
centre crop ``S``, normalise) and its features
``[N, D]`` are written as ``.safetensors`` (key ``embeddings``) or ``.npy``, with a CSV of
``index,path`` (paths relative to the folder) in the same row order.
"""
from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import dataclass
from typing import List, Sequence

import numpy as np
import torch
from safetensors.torch import save as safetensors_bytes
from torch import nn

from ssl_zoo.data.build import make_eval_loader
from ssl_zoo.data.catalog import build_dataset
from ssl_zoo.evaluation.features import extract_features
from ssl_zoo.utils.file_io import atomic_write

__all__ = ["EmbedResult", "embed_folder", "write_embeddings"]

logger = logging.getLogger(__name__)

FORMATS = (".safetensors", ".npy")


@dataclass
class EmbedResult:
    """``embeddings [N, D]`` float32 (CPU) of ``paths`` (absolute, dataset order) and the files skipped."""

    embeddings: torch.Tensor
    paths: List[str]
    skipped: List[str]


def embed_folder(backbone: nn.Module, folder: str, *, image_size: int, resize: int, mean: Sequence[float],
                 std: Sequence[float], device: torch.device, batch_size: int = 64, num_workers: int = 0,
                 corrupt_policy: str = "skip", progress: bool = True) -> EmbedResult:
    """Features of every image under ``folder`` (read without labels, recursively).

    Args:
        backbone: ``[B, 3, S, S] -> [B, D]`` (run in eval mode, float32).
        folder: a folder of images or a file list.
        image_size, resize, mean, std: the evaluation transform (``INPUT.*`` of the config).
        device: where the forward passes run.
        corrupt_policy: "skip" (default: unreadable files are left out and listed) or "fail".
        progress: a progress bar with ETA (log lines when stderr is not a terminal).
    """
    dataset = build_dataset(folder, corrupt_policy=corrupt_policy, folder_labels="none")
    loader = make_eval_loader(dataset, image_size=image_size, resize=resize, mean=mean, std=std,
                              batch_size=batch_size, num_workers=num_workers)
    paths = [p for p, _ in dataset.samples]
    skipped = list(getattr(dataset, "corrupt_files", []))
    logger.info(f"Embedding {len(paths)} images under {folder} ({len(skipped)} skipped as unreadable)")
    feats, _ = extract_features(backbone.to(device), loader, device, desc="embed" if progress else None)
    return EmbedResult(feats.cpu(), paths, skipped)


def write_embeddings(result: EmbedResult, output: str, folder: str) -> List[str]:
    """Write ``output`` (``.safetensors`` or ``.npy``) and ``<output without suffix>.csv``; returns both paths.

    Raises:
        ValueError: another suffix.
    """
    stem, ext = os.path.splitext(output)
    if ext not in FORMATS:
        raise ValueError(f"--output must end with {' or '.join(FORMATS)}, got '{output}'")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    base = folder if os.path.isdir(folder) else os.path.dirname(os.path.abspath(folder))
    rel = [os.path.relpath(p, base) for p in result.paths]
    if ext == ".safetensors":
        data = safetensors_bytes({"embeddings": result.embeddings.contiguous()},
                                 metadata={"folder": os.path.abspath(folder), "rows": "see the .csv of the same name"})
    else:
        buf = io.BytesIO()
        np.save(buf, result.embeddings.numpy())
        data = buf.getvalue()
    atomic_write(output, lambda f: f.write(data))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["index", "path"])
    writer.writerows(enumerate(rel))
    table = text.getvalue().encode()
    atomic_write(stem + ".csv", lambda f: f.write(table))
    return [output, stem + ".csv"]
