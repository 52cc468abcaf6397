#!/usr/bin/env python
"""Benchmark: the transfer protocol's regularisation sweep, our torch L-BFGS vs scikit-learn's lbfgs.

Ours solves in the features' principal axes with a diagonal preconditioner (``--plain`` adds a row
for plain L-BFGS on the original coordinates, the solver before that change). README "Transfer,
detection, segmentation and depth on this machine" has the measured table.

Both solve the same problem (sum CE + lambda/2 ||W||^2, bias unpenalised; sklearn ``C = 1/lambda``)
to the same tolerance (largest absolute gradient entry <= ``--tol``, the same scale in both), on the
same float32 features, along the same warm-started path (largest lambda first; sklearn with
``warm_start=True``), in one process with the same number of threads. Reported: CPU (process) and
wall seconds, iterations, the lambda chosen on validation, and validation / test top-1 of each.

Features (CIFAR-10-sized, 45,000 x 2,048 by default): the CIFAR-10 train split minus the 5,000
validation images of the transfer task's split, through a ResNet's last feature map flattened
(``--features map``: ResNet-10 width 16 on 32 px gives 128 x 4 x 4 = 2,048 dims at a fraction of a
ResNet-50's cost) or its pooled output (``--features pooled``). Cached on disk (sha256 key).

Examples:
    python tools/bench_transfer_solver.py --config-file configs/byol/cifar10_r10.yaml --weights random
    python tools/bench_transfer_solver.py --config-file configs/byol/cifar10_r10.yaml \\
        --weights /work/ckpt/byol_cifar10_r10/model_final.pth --subset 4
"""
import argparse
import logging
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

import sklearn  # noqa: E402
import torch  # noqa: E402
from _paths import import_methods  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from tabulate import tabulate  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from ssl_zoo.benchmark.transfer.catalog import get_transfer_dataset  # noqa: E402
from ssl_zoo.benchmark.transfer.data import RecordImages, cache_key, cached, linear_transform, split_targets  # noqa: E402
from ssl_zoo.benchmark.transfer.lbfgs import regularisation_grid, sklearn_C, sweep_regularisation  # noqa: E402
from ssl_zoo.benchmark.transfer.metrics import top1_accuracy  # noqa: E402
from ssl_zoo.benchmark.transfer.splits import load_or_draw_splits  # noqa: E402
from ssl_zoo.config import load_config  # noqa: E402
from ssl_zoo.data.catalog import resolve_root  # noqa: E402
from ssl_zoo.model_zoo.weights import load_backbone_weights  # noqa: E402
from ssl_zoo.utils.file_io import cache_dir  # noqa: E402
from ssl_zoo.modeling.backbones.build import build_backbone_from_cfg  # noqa: E402
from ssl_zoo.utils.file_io import file_digest  # noqa: E402


class _FlatMap(torch.nn.Module):
    """``[B, 3, S, S] -> [B, C * h * w]``: the last feature map, flattened (no pooling)."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, x):
        return self.backbone.forward_features(x).flatten(1)


@torch.no_grad()
def _features(model, records, ids, cfg, batch=512):
    ds = RecordImages(records, ids, linear_transform(cfg.INPUT.IMAGE_SIZE, cfg.INPUT.MEAN, cfg.INPUT.STD))
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, num_workers=cfg.DATALOADER.NUM_WORKERS)
    return torch.cat([model(x).float() for x, _ in loader])


def load_features(args):
    import_methods()  # the config's method keys (BYOL.*) are registered by the methods package
    cfg = load_config(args.config_file, ["DEVICE", "cpu"])
    entry = get_transfer_dataset("cifar10")
    records = entry.reader(entry.root(resolve_root(cfg.DATASETS.ROOT)))
    splits = load_or_draw_splits(records, entry.rule, 0, os.path.join(cache_dir(), "transfer_splits", "cifar10_seed0.json"))
    backbone = build_backbone_from_cfg(cfg)
    load_backbone_weights(backbone, args.weights)
    model = (_FlatMap(backbone) if args.features == "map" else backbone).eval()
    ident = {"weights": file_digest(args.weights) if os.path.isfile(args.weights) else args.weights, "seed": cfg.SEED,
             "backbone": cfg.MODEL.BACKBONE.dump(), "features": args.features, "size": cfg.INPUT.IMAGE_SIZE}
    folder = args.cache_dir or os.path.join(cache_dir(), "features")
    out = {}
    for s in ("train", "val", "test"):
        key = cache_key({**ident, "split": s, "n": len(splits[s])})
        out[s] = (cached(folder, f"bench-solver-{s}-{key}", lambda s=s: _features(model, records, splits[s], cfg),
                         torch.device("cpu")), split_targets(records, splits[s]))
    return out


def _clock():
    return time.process_time(), time.perf_counter()


def run_torch(data, lambdas, tol, max_iter, precondition=True):
    (xtr, ytr), (xva, yva), (xte, yte) = data["train"], data["val"], data["test"]
    c0, w0 = _clock()
    res = sweep_regularisation(xtr, ytr, xva, yva, top1_accuracy, 10, lambdas, tol=tol, max_iter=max_iter,
                               keep_fits=True, precondition=precondition)
    c1, w1 = _clock()
    best = res.best_fit
    test = top1_accuracy(xte @ best.weight.t() + best.bias, yte)
    return {"cpu": c1 - c0, "wall": w1 - w0, "iters": sum(res.iterations), "lambda": res.best_lambda,
            "val": res.val_scores[res.best_index], "test": test, "per_lambda": res.val_scores}


def run_sklearn(data, lambdas, tol, max_iter):
    (xtr, ytr), (xva, yva), (xte, yte) = [(x.numpy(), y.numpy()) for x, y in (data["train"], data["val"], data["test"])]
    clf = LogisticRegression(tol=tol, max_iter=max_iter, warm_start=True)
    scores, iters, models = {}, 0, {}
    c0, w0 = _clock()
    for lam in sorted(lambdas, reverse=True):  # the same warm-started path
        clf.set_params(C=sklearn_C(lam))
        clf.fit(xtr, ytr)
        iters += int(clf.n_iter_[0])
        scores[lam] = 100.0 * float((clf.predict(xva) == yva).mean())
        models[lam] = (clf.coef_.copy(), clf.intercept_.copy())
        logging.info(f"sklearn lambda {lam:.3g}: val {scores[lam]:.2f} ({int(clf.n_iter_[0])} iterations, "
                     f"{time.process_time() - c0:.0f} CPU s so far)")
    c1, w1 = _clock()
    asc = sorted(lambdas)
    best = max(range(len(asc)), key=lambda k: (scores[asc[k]], k))  # the same tie rule as ours (largest lambda)
    coef, icpt = models[asc[best]]
    test = 100.0 * float(((xte @ coef.T + icpt).argmax(1) == yte).mean())
    return {"cpu": c1 - c0, "wall": w1 - w0, "iters": iters, "lambda": asc[best], "val": scores[asc[best]],
            "test": test, "per_lambda": [scores[l] for l in asc]}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True)
    p.add_argument("--weights", default="random")
    p.add_argument("--features", default="map", choices=("map", "pooled"))
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument("--max-iter", type=int, default=1000)
    p.add_argument("--subset", type=int, default=1, help="time every k-th lambda of the 45 (same subset for both)")
    p.add_argument("--first", type=int, default=0, help="time only the FIRST largest lambdas of the path (0 = all): "
                   "a partial sweep for machines where the whole one takes too long; the chosen lambda is then "
                   "only among those")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache-dir", default="")
    p.add_argument("--skip-sklearn", action="store_true")
    p.add_argument("--plain", action="store_true", help="also time plain (unpreconditioned) torch L-BFGS")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")  # per-lambda progress of our sweep
    torch.set_num_threads(args.threads)
    data = load_features(args)
    lambdas = regularisation_grid()[::-1][::args.subset]
    lambdas = sorted(lambdas[:args.first] if args.first else lambdas)
    n, d = data["train"][0].shape
    print(f"features: {n} x {d} train, {len(data['val'][1])} val, {len(data['test'][1])} test ({args.features}, "
          f"weights {args.weights}); {len(lambdas)} lambdas of the 45 ({lambdas[-1]:.3g} down to {lambdas[0]:.3g}); "
          f"tol {args.tol}; {args.threads} thread(s); torch {torch.__version__}")
    with threadpool_limits(args.threads):
        rows = {"torch L-BFGS (ours)": run_torch(data, lambdas, args.tol, args.max_iter)}
        if args.plain:
            rows["torch L-BFGS, plain"] = run_torch(data, lambdas, args.tol, args.max_iter, precondition=False)
        if not args.skip_sklearn:
            rows[f"scikit-learn {sklearn.__version__} lbfgs"] = run_sklearn(data, lambdas, args.tol, args.max_iter)
    ours = rows["torch L-BFGS (ours)"]
    table = [[k, f"{r['cpu']:.1f}", f"{r['wall']:.1f}", f"{r['cpu'] / ours['cpu']:.2f}", r["iters"], f"{r['lambda']:.3g}",
              f"{r['val']:.2f}", f"{r['test']:.2f}"] for k, r in rows.items()]
    print(tabulate(table, headers=["solver", "CPU s", "wall s", "CPU / ours", "iterations", "chosen lambda",
                                   "val top-1", "test top-1"], tablefmt="github"))
    for name, other in list(rows.items())[1:]:
        diff = max(abs(a - b) for a, b in zip(ours["per_lambda"], other["per_lambda"]))
        print(f"largest difference of validation top-1 over the sweep, ours vs {name}: {diff:.2f} points")


if __name__ == "__main__":
    main()
