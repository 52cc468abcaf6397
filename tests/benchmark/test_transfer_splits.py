"""Split rules of PROTOCOLS.md s.5: per-class counts, determinism, split files, size checks."""
import json
from collections import Counter

import pytest

from ssl_zoo.benchmark.transfer.catalog import TRANSFER_DATASETS
from ssl_zoo.benchmark.transfer.splits import SplitRule, check_sizes, draw_splits, load_or_draw_splits
from ssl_zoo.data.readers.records import SplitRecords


def _records(per_class, test_per_class=None, split="train", shuffle=False):
    rows = [(f"c{c}/img{i:03d}.jpg", c) for c, n in enumerate(per_class) for i in range(n)]
    if shuffle:
        rows = rows[1::2] + rows[0::2]
    splits = {split: rows}
    if test_per_class is not None:
        splits["test"] = [(f"test/c{c}/t{i}.jpg", c) for c, n in enumerate(test_per_class) for i in range(n)]
    return SplitRecords("toy", "/nowhere", [f"c{c}" for c in range(len(per_class))], splits)


def _labels(ids):
    return Counter(int(i.split("/")[-2][1:]) for i in ids)


def test_fraction_is_per_class_and_disjoint():
    rec = _records([50, 30, 11], test_per_class=[2, 2, 2])
    s = draw_splits(rec, SplitRule("fraction", fraction=0.1), seed=0)
    assert _labels(s["val"]) == {0: 5, 1: 3, 2: 1}
    assert not set(s["train"]) & set(s["val"]) and len(s["train"]) + len(s["val"]) == 91
    assert len(s["test"]) == 6


def test_sun397_rule_40_plus_10_and_pets_20_per_class():
    s = draw_splits(_records([50] * 4, [50] * 4), TRANSFER_DATASETS["sun397"].rule, seed=0)
    assert set(_labels(s["train"]).values()) == {40} and set(_labels(s["val"]).values()) == {10}
    s = draw_splits(_records([100, 93], [1, 1]), TRANSFER_DATASETS["pets"].rule, seed=0)
    assert _labels(s["val"]) == {0: 20, 1: 20} and _labels(s["train"]) == {0: 80, 1: 73}


def test_caltech_30_without_replacement_25_train_5_val_rest_test():
    rec = _records([40, 31, 80], split="all")
    s = draw_splits(rec, TRANSFER_DATASETS["caltech101"].rule, seed=3)
    assert set(_labels(s["train"]).values()) == {25} and set(_labels(s["val"]).values()) == {5}
    assert _labels(s["test"]) == {0: 10, 1: 1, 2: 50}
    everything = s["train"] + s["val"] + s["test"]
    assert len(everything) == len(set(everything)) == 151  # no image drawn twice, none lost


def test_birdsnap_val_matches_test_count_per_class():
    s = draw_splits(_records([20, 20, 20], test_per_class=[3, 0, 7]), TRANSFER_DATASETS["birdsnap"].rule, seed=0)
    assert _labels(s["val"]) == {0: 3, 2: 7}


def test_draw_is_deterministic_independent_of_listing_order_and_changes_with_seed():
    a = draw_splits(_records([30, 30]), SplitRule("fraction"), seed=0)
    b = draw_splits(_records([30, 30], shuffle=True), SplitRule("fraction"), seed=0)
    c = draw_splits(_records([30, 30]), SplitRule("fraction"), seed=1)
    assert a == b and a["val"] != c["val"]


def test_official_needs_all_three_splits():
    with pytest.raises(ValueError, match="no \\['val'\\] split"):
        draw_splits(_records([5], [1]), SplitRule("official"))


def test_too_small_class_is_an_error():
    with pytest.raises(ValueError, match="class 'c1' has 10 images"):
        draw_splits(_records([50, 10], [1, 1]), SplitRule("per_class", val_per_class=20))


def test_split_file_is_written_then_reused_and_checked(tmp_path):
    rec = _records([30, 30], [2, 2])
    path = str(tmp_path / "toy_seed0.json")
    first = load_or_draw_splits(rec, SplitRule("fraction"), 0, path)
    saved = json.loads(open(path).read())
    assert saved["val"] == first["val"] and saved["rule"]["kind"] == "fraction"
    saved["val"] = saved["val"][:2]  # a hand-edited file is what later runs use
    open(path, "w").write(json.dumps(saved))
    assert load_or_draw_splits(rec, SplitRule("fraction"), 0, path)["val"] == first["val"][:2]
    saved["val"].append("c9/not_in_this_copy.jpg")
    open(path, "w").write(json.dumps(saved))
    with pytest.raises(ValueError, match="delete the split file"):
        load_or_draw_splits(rec, SplitRule("fraction"), 0, path)


def test_size_check_reports_each_mismatch():
    splits = {"train": ["a"] * 45000, "val": ["b"] * 5000, "test": ["c"] * 9999}
    assert check_sizes("cifar10", splits, TRANSFER_DATASETS["cifar10"].sizes) == [
        "cifar10 test: 9999 images, the paper's table has 10000"]
    assert check_sizes("mine", splits, None) == []


def test_catalogue_matches_protocols_table():
    totals = {n: sum(d.sizes) for n, d in TRANSFER_DATASETS.items()}
    assert len(TRANSFER_DATASETS) == 12
    assert totals["caltech101"] == 9144 and totals["cifar100"] == 60000 and totals["food101"] == 101000
    assert {d.metric for n, d in TRANSFER_DATASETS.items() if n in ("aircraft", "pets", "caltech101", "flowers")} == {
        "mean_per_class"}
    assert TRANSFER_DATASETS["voc2007"].metric == "voc11_map"
