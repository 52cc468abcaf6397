"""With two processes (gloo on CPU), the segmentation confusion matrix and the depth metric sums are
reduced over processes: each process scores half the pixels, every process reports the whole-set
numbers (equal to one process scoring everything)."""
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ssl_zoo.benchmark.depth.metrics import DepthMetricSums, depth_metrics
from ssl_zoo.benchmark.segmentation.metrics import all_reduce_confusion, confusion_matrix, iou_from_confusion
from ssl_zoo.engine.launch import find_free_port


def _data():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (2, 10), generator=g)
    target[0, :2] = 255
    pred = torch.randint(0, 4, (2, 10), generator=g)
    gt = torch.rand(2, 10, generator=g) * 4
    gt[1, :3] = 0  # invalid
    return pred, target, gt * 1.1 + 0.1, gt


def _worker(rank, port, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        pred, target, d, gt = _data()
        miou = iou_from_confusion(all_reduce_confusion(confusion_matrix(pred[rank], target[rank], 4)))["miou"]
        sums = DepthMetricSums()
        sums.update(d[rank], gt[rank], gt[rank] > 0)
        torch.save({"miou": miou, "depth": sums.result()}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_metrics_are_reduced_over_processes(tmp_path):
    mp.spawn(_worker, args=(find_free_port(), str(tmp_path)), nprocs=2, join=True)
    pred, target, d, gt = _data()
    want_miou = iou_from_confusion(confusion_matrix(pred, target, 4))["miou"]
    want_depth = depth_metrics(d, gt, gt > 0)
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert abs(got["miou"] - want_miou) < 1e-9
        assert got["depth"]["pixels"] == want_depth["pixels"] == 17
        for k in ("delta1", "delta2", "delta3", "rms", "rel", "log10"):
            assert abs(got["depth"][k] - want_depth[k]) < 1e-9, k
