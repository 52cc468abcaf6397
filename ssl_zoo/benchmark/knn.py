"""kNN evaluation (``tools/benchmark.py --task knn``): weighted cosine kNN with the whole train
split as the memory bank (k = 200 and 20, T = 0.1; Wu et al. 2018, as DINO's ``eval_knn.py``)."""
from __future__ import annotations

import time
from typing import Dict, List, Sequence

import torch.nn.functional as F

from ssl_zoo.benchmark.eval_setup import EvalSetup, extract
from ssl_zoo.evaluation.knn import knn_accuracy

__all__ = ["run_knn"]


def run_knn(setup: EvalSetup, ks: Sequence[int] = (200, 20), temperature: float = 0.1) -> List[Dict]:
    """Weighted cosine kNN (k = 200 and 20, T = 0.1): the whole train split is the memory bank."""
    t0 = time.perf_counter()
    train_f, train_y = extract(setup, setup.backbone, setup.train)
    test_f, test_y = extract(setup, setup.backbone, setup.test)
    train_f, test_f = F.normalize(train_f, dim=1), F.normalize(test_f, dim=1)
    rows = []
    for k in ks:
        acc = knn_accuracy(train_f, train_y, test_f, test_y, k=int(k), temperature=temperature,
                           num_classes=setup.num_classes)
        rows.append({"task": "knn", "mode": f"k={k}", "top1": acc["top1"], "top5": acc["top5"],
                     "seconds": time.perf_counter() - t0})
    return rows
