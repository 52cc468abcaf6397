"""Shared test set-up: import the methods package (registers every method) and keep
torch to one thread so the suite behaves on a 2-core CI machine.

``tests/`` mirrors the package (``tests/data/`` for ``ssl_zoo/data/``, ...). Every test folder is
on ``sys.path``, so shared helpers import by module name from any folder (e.g. ``from test_trainer
import build_toy_trainer``, ``from model_zoo_fixtures import LocalServer``); test module names are
unique across the tree."""
import os
import sys

import pytest
import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS_DIR = os.path.join(REPO_ROOT, "tests")
sys.path.insert(0, os.path.join(REPO_ROOT, "tools"))
sys.path.insert(0, REPO_ROOT)
for _folder in sorted(os.listdir(TESTS_DIR)):
    if os.path.isdir(os.path.join(TESTS_DIR, _folder)) and not _folder.startswith((".", "_")):
        sys.path.append(os.path.join(TESTS_DIR, _folder))

from _paths import import_methods  # noqa: E402

import_methods()
torch.set_num_threads(1)


@pytest.fixture
def tiny_cfg():
    """BYOL on the built-in CIFAR-10 subset with a tiny ResNet: fast enough for one-step tests."""
    from ssl_zoo.config import get_cfg

    cfg = get_cfg()
    cfg.merge_from_list([
        "MODEL.BACKBONE.NAME", "resnet10", "MODEL.BACKBONE.BASE_WIDTH", 8, "MODEL.BACKBONE.CIFAR_STEM", True,
        "INPUT.AUG_PRESET", "byol_cifar", "INPUT.IMAGE_SIZE", 32, "INPUT.MEAN", [0.4914, 0.4822, 0.4465],
        "DATASETS.TRAIN", "builtin_cifar10_train", "SOLVER.IMS_PER_BATCH", 16, "SOLVER.MAX_ITER", 2,
        "SOLVER.WARMUP_ITERS", 1, "SOLVER.BASE_LR", 0.1, "DATALOADER.NUM_WORKERS", 0, "DEVICE", "cpu",
        "LOG.PROGRESS_BAR", False, "LOG.TENSORBOARD", False, "LOG.SUMMARY", False,
    ])
    return cfg
