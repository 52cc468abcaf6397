"""Weighted cosine k-nearest-neighbour classification of frozen features.

Wu et al., "Unsupervised Feature Learning via Non-Parametric Instance Discrimination",
CVPR 2018 (InstDisc), Sec. 3.4, as used by DINO (Caron et al. 2021, ``eval_knn.py``):
features are L2-normalised; a query's ``k`` nearest bank samples by cosine similarity
``s_i`` vote for their class with weight ``exp(s_i / T)`` (T = 0.1, k = 200 / 20).
"""
from __future__ import annotations

from typing import Dict

import torch

from ssl_zoo.evaluation.metrics import topk_correct


@torch.no_grad()
def knn_classify(
    train_f: torch.Tensor,
    train_y: torch.Tensor,
    test_f: torch.Tensor,
    k: int,
    temperature: float,
    num_classes: int,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """Class scores of weighted cosine kNN (Wu et al. 2018).

    ``score[q, c] = sum over the k nearest bank samples i of q with label c of exp(s_qi / T)``.

    Args:
        train_f: ``[N, D]`` L2-normalised bank features.
        train_y: ``[N]`` int64 bank labels in ``[0, num_classes)``.
        test_f: ``[M, D]`` L2-normalised query features.
        k: neighbours (clipped to N).
        temperature: T of the exponential weights.
        num_classes: C.
        chunk_size: queries per similarity matrix (memory ``chunk_size x N``).

    Returns:
        ``[M, C]`` float32 scores.
    """
    k = min(k, train_f.shape[0])
    train_y = train_y.to(train_f.device)
    scores = []
    for start in range(0, test_f.shape[0], chunk_size):
        q = test_f[start : start + chunk_size].to(train_f.device, train_f.dtype)
        sim, idx = (q @ train_f.T).topk(k, dim=1)  # [m, k]
        weights = (sim.float() / temperature).exp()
        s = torch.zeros(q.shape[0], num_classes, device=q.device, dtype=torch.float32)
        scores.append(s.scatter_add_(1, train_y[idx], weights))
    return torch.cat(scores)


@torch.no_grad()
def knn_accuracy(
    train_f: torch.Tensor,
    train_y: torch.Tensor,
    test_f: torch.Tensor,
    test_y: torch.Tensor,
    k: int = 200,
    temperature: float = 0.1,
    num_classes: int = 0,
    chunk_size: int = 1024,
) -> Dict[str, float]:
    """Top-1 / top-5 accuracy in percent of weighted kNN (see ``knn_classify``).

    Args:
        num_classes: C; 0 = ``max(label) + 1`` over bank and queries.

    Returns:
        ``{"top1": float, "top5": float}`` in percent (top-5 = top-C when C < 5).
    """
    if num_classes <= 0:
        num_classes = int(max(train_y.max().item(), test_y.max().item())) + 1
    scores = knn_classify(train_f, train_y, test_f, k, temperature, num_classes, chunk_size)
    top1, top5 = topk_correct(scores, test_y)
    n = max(test_y.shape[0], 1)
    return {"top1": 100.0 * top1.item() / n, "top5": 100.0 * top5.item() / n}
