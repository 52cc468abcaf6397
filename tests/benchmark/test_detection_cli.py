"""End to end: make_pasted_voc -> tools/benchmark.py --task detection (train, precise BN, test,
results), --resume, and tools/model_zoo.py export --format detectron2."""
import csv
import json
import os
import pickle

import pytest
import torch

import benchmark
import make_pasted_voc
import model_zoo
from test_detection_pasted_voc import _cifar_zip

OPTS = ["MODEL.BACKBONE.NAME", "resnet10", "MODEL.BACKBONE.BASE_WIDTH", "8", "MODEL.BACKBONE.CIFAR_STEM", "True",
        "DEVICE", "cpu", "SOLVER.AMP.ENABLED", "False", "DATALOADER.NUM_WORKERS", "0", "LOG.PROGRESS_BAR", "False",
        "BENCHMARK.DETECTION.BUDGET_ITERS", "4", "BENCHMARK.DETECTION.IMS_PER_BATCH", "2",
        "BENCHMARK.DETECTION.CHECKPOINT_PERIOD", "2", "BENCHMARK.DETECTION.PRECISE_BN_ITERS", "1",
        "BENCHMARK.DETECTION.MIN_SIZE_TRAIN", "(64,)", "BENCHMARK.DETECTION.MIN_SIZE_TEST", "64",
        "BENCHMARK.DETECTION.MAX_SIZE", "96", "BENCHMARK.DETECTION.ANCHOR_SIZES", "(16, 32)",
        "BENCHMARK.DETECTION.ROI_BATCH_SIZE_PER_IMAGE", "16", "BENCHMARK.DETECTION.RPN_PRE_NMS_TOPK_TRAIN", "200",
        "BENCHMARK.DETECTION.RPN_POST_NMS_TOPK_TRAIN", "50", "BENCHMARK.DETECTION.RPN_PRE_NMS_TOPK_TEST", "100",
        "BENCHMARK.DETECTION.RPN_POST_NMS_TOPK_TEST", "20", "BENCHMARK.DETECTION.TEST_IMS_PER_BATCH", "2"]


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    d = tmp_path_factory.mktemp("det")
    zips = _cifar_zip(d / "train.zip", "train", 8), _cifar_zip(d / "test.zip", "test", 5, seed=1)
    root = d / "VOCdevkit" / "VOC2007"
    assert make_pasted_voc.main(["--out", str(root), "--cifar-zip", zips[0], "--cifar-zip", zips[1], "--num-train", "4",
                                 "--num-val", "2", "--num-test", "3", "--canvas-min", "128", "--canvas-max", "128"]) == 0
    return str(d)


def _run(voc, out, *extra, weights="random"):
    args = benchmark.parse_args(["--task", "detection", "--dataset", "voc07", "--config-file",
                                 "configs/Base-CIFAR-quickstart.yaml", "--weights", weights, "--output-dir", str(out),
                                 *extra, *OPTS, "DATASETS.ROOT", voc, "BENCHMARK.RESULTS_CSV", str(out / "r.csv")])
    return benchmark.main(args)


def test_detection_cli_end_to_end_and_resume(voc, tmp_path, capsys):
    out = tmp_path / "run"
    rows = _run(voc, out)
    assert len(rows) == 1 and rows[0]["mode"] == "budget" and "4 of 24000" in rows[0]["schedule"]
    assert rows[0]["precise_bn_iters"] == 1 and 0.0 <= rows[0]["AP50"] <= 100.0
    saved = json.loads((out / "results.json").read_text())
    assert saved["results"][0]["AP50"] == pytest.approx(rows[0]["AP50"])
    header, row = next(csv.reader([(out / "r.csv").read_text().splitlines()[0]])), next(csv.DictReader(open(out / "r.csv")))
    assert "metrics" in header and {"AP50", "AP", "AP75"} <= set(json.loads(row["metrics"]))  # every task's numbers, one column
    assert "budget: 4 of 24000" in capsys.readouterr().out
    final = torch.load(out / "model_final.pth", weights_only=False)["model"]
    # interrupted after iteration 2: resuming from model_0000002 reproduces the uninterrupted weights
    (out / "last_checkpoint").write_text("model_0000002.pth")
    rows2 = _run(voc, out, "--resume")
    resumed = torch.load(out / "model_final.pth", weights_only=False)["model"]
    assert all(torch.equal(final[k], resumed[k]) for k in final)
    assert rows2[0]["AP50"] == pytest.approx(rows[0]["AP50"])


def test_detection_bad_dataset_and_export(voc, tmp_path):
    with pytest.raises(KeyError, match="choose one of"):
        benchmark.main(benchmark.parse_args(["--task", "detection", "--dataset", "coco", "--config-file",
                                             "configs/Base-CIFAR-quickstart.yaml", "--weights", "random",
                                             "--output-dir", str(tmp_path / "x"), *OPTS]))
    # a train_net-style checkpoint -> detectron2 pickle with MoCo's key layout
    from ssl_zoo.modeling.backbones.build import build_backbone

    sd = build_backbone("resnet10", base_width=8, cifar_stem=True).state_dict()
    ckpt = tmp_path / "model_final.pth"
    torch.save({"model": {f"backbone.{k}": v for k, v in sd.items()}}, ckpt)
    model_zoo.main(["export", str(ckpt), str(tmp_path / "d2.pkl"), "--format", "detectron2"])
    with open(tmp_path / "d2.pkl", "rb") as f:
        model = pickle.load(f)["model"]
    assert (model["res3.0.shortcut.norm.running_mean"] == sd["layer2.0.downsample.1.running_mean"].numpy()).all()
    assert "stem.conv1.norm.weight" in model and len(model) == len(sd)
