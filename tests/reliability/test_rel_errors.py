"""Every user error is one `error:` line naming the file, key or value, with --debug for the
traceback (issue 13 "unclear errors"): bad configs, bad MODEL.WEIGHTS, a full disk, and the
same under --num-gpus 2. ``tools/train_net.py`` runs in this process where it can."""
import errno
import os

import pytest
import torch
from test_bad_input import SMALL_HEADS, _train_net, _yaml
from test_rel_run_dir import _cli, _config, _pth

import train_net
from ssl_zoo.engine.defaults import default_argument_parser, launch_cli


@pytest.mark.parametrize("overrides, expected", [
    (["SOLVER.IMS_PER_BATCH", "0"], "SOLVER.IMS_PER_BATCH = 0 is invalid: it must be a positive number of images"),
    (["SOLVER.IMS_PER_BATCH", "-8"], "SOLVER.IMS_PER_BATCH = -8 is invalid"),
    (["SOLVER.ACCUM_STEPS", "0"], "SOLVER.ACCUM_STEPS = 0 is invalid: it must be an integer >= 1"),
    (["INPUT.IMAGE_SIZE", "0"], "INPUT.IMAGE_SIZE = 0 is invalid: it must be a positive number of pixels"),
])
def test_bad_values_are_one_line_naming_key_and_value(tiny_cfg, tmp_path, capsys, overrides, expected):
    cfg, config = _config(tiny_cfg, tmp_path)
    line = _cli(capsys, config, *overrides)
    assert line.startswith(f"error: {config} + command line: {expected}"), line
    assert not os.path.exists(cfg.OUTPUT_DIR)  # refused before anything ran


def test_circular_base_and_empty_yaml(tmp_path, capsys):
    a, b, empty = tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "empty.yaml"
    a.write_text("_BASE_: b.yaml\nSEED: 1\n")
    b.write_text("_BASE_: a.yaml\n")
    empty.write_text("# nothing but a comment\n")
    line = _cli(capsys, str(a))
    assert line == f"error: circular _BASE_: {a} -> {b} -> {a}", line  # was "maximum recursion depth"
    line = _cli(capsys, str(empty))
    assert line.startswith(f"error: config file '{empty}' is empty"), line


def test_bad_model_weights_are_errors_not_a_silent_random_init(tiny_cfg, tmp_path, capsys):
    cfg, config = _config(tiny_cfg, tmp_path, max_iter=1)
    zero, torn, foreign = tmp_path / "zero.pth", tmp_path / "torn.pth", tmp_path / "foreign.pth"
    zero.write_bytes(b"")
    torch.save({"model": {"encoder.layer.weight": torch.zeros(3, 3)}}, foreign)  # keys match nothing
    torn.write_bytes(foreign.read_bytes()[:100])
    cases = [(zero, f"error: checkpoint '{zero}' is empty (0 bytes)"),
             (torn, f"error: checkpoint '{torn}' is damaged or truncated"),
             (foreign, f"error: MODEL.WEIGHTS '{foreign}': {foreign}: the weights do not cover the backbone")]
    for i, (weights, expected) in enumerate(cases):
        line = _cli(capsys, config, "MODEL.WEIGHTS", str(weights), "OUTPUT_DIR", str(tmp_path / f"w{i}"))
        assert line.startswith(expected), line
        assert not os.path.exists(tmp_path / f"w{i}" / "model_final.pth")


def test_disk_full_during_training_is_one_line_saying_nothing_was_lost(tiny_cfg, tmp_path, capsys, monkeypatch):
    cfg, config = _config(tiny_cfg, tmp_path, max_iter=4, period=2)
    real_save = torch.save

    def save(obj, f, *a, **k):
        if obj.get("iteration") == 4:  # the final checkpoint does not fit
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", save)
    line = _cli(capsys, config)
    assert line.startswith("error: [Errno 28] no space left on the device while writing") \
        and "model_final.pth': nothing was lost" in line and "--resume" in line, line
    assert _pth(cfg.OUTPUT_DIR) == ["model_0000002.pth"]
    assert open(os.path.join(cfg.OUTPUT_DIR, "last_checkpoint")).read() == "model_0000002.pth"


def test_debug_flag_shows_the_traceback(tmp_path, capsys):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    args = default_argument_parser().parse_args(["--debug", "--config-file", str(empty)])
    with pytest.raises(SystemExit):
        launch_cli(train_net.main, args, train_net.setup)
    err = capsys.readouterr().err
    assert "Traceback" in err and "ConfigError" in err


def test_one_error_line_under_two_processes(tiny_cfg, tmp_path):
    """Both ranks fail on the same bad MODEL.WEIGHTS: the launcher prints ONE line, no traceback."""
    foreign = tmp_path / "foreign.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, foreign)
    cfg = tiny_cfg.clone()
    cfg.merge_from_list(["OUTPUT_DIR", str(tmp_path / "run"), "MODEL.WEIGHTS", str(foreign), *SMALL_HEADS])
    proc = _train_net("--num-gpus", "2", "--config-file", _yaml(cfg, tmp_path / "c.yaml"), timeout=180)
    assert proc.returncode == 1, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"MODEL.WEIGHTS '{foreign}'" in errors[0], proc.stderr[-3000:]
    assert "the weights do not cover the backbone" in errors[0]
    assert "Traceback" not in proc.stderr


def test_benchmark_cli_bad_weights_files_are_one_line(tmp_path, capsys):
    """tools/benchmark.py in this process: a zero-byte and a recursive-container --weights file."""
    import importlib.util

    import numpy as np
    from test_benchmark_cli import TOOL, _write_split

    spec = importlib.util.spec_from_file_location("ssl_zoo_tool_benchmark", TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("test", 2)):
        _write_split(str(tmp_path / "data" / split), n, rng)
    config = tmp_path / "bench.yaml"
    config.write_text(f"""
MODEL: {{BACKBONE: {{NAME: "resnet10", BASE_WIDTH: 4, CIFAR_STEM: True}}}}
INPUT: {{IMAGE_SIZE: 16}}
DATALOADER: {{NUM_WORKERS: 0}}
DEVICE: "cpu"
OUTPUT_DIR: "{tmp_path / 'out'}"
BENCHMARK: {{TRAIN: "{tmp_path / 'data' / 'train'}", TEST: "{tmp_path / 'data' / 'test'}", RESULTS_CSV: ""}}
""")
    zero = tmp_path / "zero.pth"
    zero.write_bytes(b"")
    d = {"epoch": 1}
    d["model"] = d
    recursive = tmp_path / "recursive.pth"
    torch.save({"state_dict": d}, recursive)
    for weights, expected in ((zero, f"error: checkpoint '{zero}' is empty (0 bytes)"),
                              (recursive, "error: the checkpoint's containers")):
        args = tool.parse_args(["--task", "knn", "--config-file", str(config), "--weights", str(weights)])
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            launch_cli(tool.main, args, tool.setup_cfg, user_errors=(FileNotFoundError, ValueError, KeyError))
        err = capsys.readouterr().err.strip().splitlines()
        assert info.value.code == 1 and err[-1].startswith(expected), err[-3:]
        assert "Traceback" not in "\n".join(err)
