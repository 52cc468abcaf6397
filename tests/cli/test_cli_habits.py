"""CLI habits (issue 14 item 6): flags anywhere around KEY VALUE overrides, packaged config names,
every ``--help`` with examples, overrides taken the same way by every tool."""
import os
import sys

import pytest

from ssl_zoo.cli import benchmark as bench_cli
from ssl_zoo.cli import embed as embed_cli
from ssl_zoo.cli import model_zoo as zoo_cli
from ssl_zoo.cli import train as train_cli
from ssl_zoo.utils.resources import configs_dir, resolve_config_file

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_train_flags_before_between_and_after_overrides():
    for argv in (["--config-file", "byol/quickstart.yaml", "OUTPUT_DIR", "out/r50", "--resume"],
                 ["--resume", "--config-file", "byol/quickstart.yaml", "OUTPUT_DIR", "out/r50"],
                 ["OUTPUT_DIR", "out/r50", "--resume", "--config-file", "byol/quickstart.yaml"]):
        args = train_cli.parse_args(argv)
        assert args.resume and args.opts == ["OUTPUT_DIR", "out/r50"], argv
        assert args.config_file == os.path.join(configs_dir(), "byol", "quickstart.yaml")
    args = train_cli.parse_args(["--config-file", "byol/quickstart.yaml", "SEED", "-1", "OUTPUT_DIR", "o", "--debug"])
    assert args.opts == ["SEED", "-1", "OUTPUT_DIR", "o"] and args.debug  # a negative value is a value
    assert train_cli.setup(args).SEED == -1


def test_benchmark_and_embed_take_overrides_anywhere():
    args = bench_cli.parse_args(["--task", "knn", "TEST.IMS_PER_BATCH", "8", "--config-file", "byol/quickstart.yaml",
                                 "--weights", "random", "DEVICE", "cpu"])
    assert args.opts == ["TEST.IMS_PER_BATCH", "8", "DEVICE", "cpu"] and args.weights == "random"
    args = embed_cli.parse_args(["imgs", "DEVICE", "cpu", "--weights", "random", "--no-progress"])
    assert args.folder == "imgs" and args.opts == ["DEVICE", "cpu"] and args.no_progress


def test_compare_methods_takes_positional_overrides_like_train_net():
    sys.path.insert(0, os.path.join(REPO, "tools"))
    import compare_methods

    assert compare_methods.split_overrides(["a.yaml", "b.yaml", "SOLVER.EPOCHS", "40"]) == \
        (["a.yaml", "b.yaml"], ["SOLVER.EPOCHS", "40"])
    assert compare_methods.split_overrides(["a.yaml"]) == (["a.yaml"], [])


def test_packaged_config_names_resolve_and_existing_paths_win(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the checkout: both spellings find the packaged file
    packaged = os.path.join(configs_dir(), "byol", "quickstart.yaml")
    assert resolve_config_file("byol/quickstart.yaml") == packaged
    assert resolve_config_file("configs/byol/quickstart.yaml") == packaged
    (tmp_path / "byol").mkdir()
    (tmp_path / "byol" / "quickstart.yaml").write_text("SEED: 3\n")  # a local file of that name wins
    assert resolve_config_file("byol/quickstart.yaml") == "byol/quickstart.yaml"
    assert resolve_config_file("nope/missing.yaml") == "nope/missing.yaml"  # the loader's error names it


@pytest.mark.parametrize("parse", [train_cli.parse_args, bench_cli.parse_args, embed_cli.parse_args,
                                   lambda argv: zoo_cli.main(argv)])
def test_every_help_has_examples(parse, capsys):
    with pytest.raises(SystemExit) as info:
        parse(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "Examples:" in text and "ssl-zoo-" in text
