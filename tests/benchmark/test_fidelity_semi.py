"""Semi-supervised ImageNet protocol (issue #12 item 7, PROTOCOLS.md s.3-4).

The official 1% / 10% lists (SimCLR's) are used whole; the 10,009-image validation split
is held out from the other train images; ImageNet gets 10,009 without any flag.
"""
import pytest
import torch

from ssl_zoo.benchmark.eval_setup import IMAGENET_VAL_SIZE, val_holdout_size
from ssl_zoo.config import get_cfg
from ssl_zoo.data.subset import holdout_split


def test_imagenet_defaults_to_10009_held_out_images():
    cfg = get_cfg()
    assert cfg.BENCHMARK.VAL_SIZE == -1
    assert IMAGENET_VAL_SIZE == 10009
    assert val_holdout_size("imagenet_train", cfg.BENCHMARK.VAL_SIZE) == 10009
    assert val_holdout_size("cifar10_train", cfg.BENCHMARK.VAL_SIZE) == 0  # -> VAL_FRACTION
    assert val_holdout_size("imagenet_train", 500) == 500
    with pytest.raises(ValueError, match="BENCHMARK.VAL_SIZE"):
        val_holdout_size("imagenet_train", -2)


def test_holdout_never_takes_excluded_images():
    n = 1000
    targets = torch.arange(n) % 10
    listed = torch.randperm(n, generator=torch.Generator().manual_seed(3))[:128]
    for kwargs in (dict(size=100), dict(fraction=0.1)):
        rest, val = holdout_split(targets, seed=0, exclude=listed, **kwargs)
        assert set(val.tolist()).isdisjoint(listed.tolist())
        assert set(listed.tolist()) <= set(rest.tolist())
        assert sorted(rest.tolist() + val.tolist()) == list(range(n))
    assert len(holdout_split(targets, size=100, seed=0, exclude=listed)[1]) == 100
    # Without exclusions the draw is the earlier one (no change to existing splits).
    assert torch.equal(holdout_split(targets, size=100, seed=0)[1],
                       holdout_split(targets, size=100, seed=0, exclude=torch.empty(0, dtype=torch.long))[1])
    with pytest.raises(ValueError, match="excluded"):
        holdout_split(targets, size=900, seed=0, exclude=listed)
