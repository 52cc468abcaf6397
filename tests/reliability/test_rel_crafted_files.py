"""Crafted and damaged files through the restricted unpickler and the CLI (issue 13 item 6 and
"unclear errors"): recursive containers, "billion laughs" bombs, allocation bombs, empty and
damaged files. Each must fail fast with a clear error; none may run code, hang or eat memory."""
import os
import pickle
import numpy as np
import pytest
from test_model_zoo_download import _load_tool

from ssl_zoo.model_zoo.convert.safe_pickle import PickleLimitError, UnsafePickleError, safe_load_pickle



def _laughs(levels=40, width=3) -> bytes:
    """A list of ``width`` references to a list of ``width`` references ... (3**40 leaves), ~400 bytes."""
    b = bytearray(b"\x80\x02]q\x00")
    for i in range(1, levels):
        b += b"(" + (b"h" + bytes([i - 1])) * width + b"lq" + bytes([i])
    return bytes(b + b".")


def _self_containing() -> bytes:
    d = {"params": {}}
    d["params"]["self"] = d  # a dict inside itself
    return pickle.dumps(d, protocol=2)


def _huge_array() -> bytes:
    """``numpy.ndarray((10**11,), uint8)`` by REDUCE: 100 GB requested by a ~100-byte file."""
    class Alloc:
        def __reduce__(self):
            return (np.ndarray, ((10**11,), np.dtype("uint8")))
    return pickle.dumps(Alloc(), protocol=2)


def test_bomb_recursive_and_allocation_pickles_fail_fast():
    bomb = _laughs()
    assert len(bomb) < 600
    with pytest.raises(PickleLimitError, match="expands to more than .* objects"):
        safe_load_pickle(bomb)
    with pytest.raises(PickleLimitError, match="reference cycle"):
        safe_load_pickle(_self_containing())
    with pytest.raises(PickleLimitError, match="refusing to allocate a numpy array of 100000000000 bytes"):
        safe_load_pickle(_huge_array())
    deep = pickle.dumps(__import__("functools").reduce(lambda acc, _: [acc], range(200), []), protocol=2)
    with pytest.raises(PickleLimitError, match="nests containers more than"):
        safe_load_pickle(deep)
    # a legitimate shared array is still fine (and stays shared)
    a = np.arange(6, dtype=np.float32)
    out = safe_load_pickle(pickle.dumps({"x": a, "y": a}, protocol=2))
    assert np.array_equal(out["x"], a) and out["x"] is out["y"]


def test_empty_and_damaged_pickles_are_clear_errors(tmp_path):
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.pkl' is empty \(0 bytes\)"):
        safe_load_pickle(str(empty))
    torn = tmp_path / "torn.pkl"
    torn.write_bytes(pickle.dumps({"a": np.ones(100)}, protocol=2)[:120])
    with pytest.raises(ValueError, match=r"torn\.pkl' is damaged or not a pickle"):
        safe_load_pickle(str(torn))
    with pytest.raises(UnsafePickleError, match="posix.system|os.system"):
        safe_load_pickle(pickle.dumps(type("X", (), {"__reduce__": lambda self: (os.system, ("true",))})()))


def test_model_zoo_cli_gives_one_error_line_and_debug_gives_the_traceback(tmp_path, capsys):
    tool = _load_tool()  # tools/model_zoo.py, in this process
    bomb = tmp_path / "bomb.pkl"
    bomb.write_bytes(_laughs())
    out = str(tmp_path / "o.pth")
    for source, expected in ((bomb, f"error: '{bomb}': the pickle expands to more than"),
                             (tmp_path / "missing.pkl", "error: ")):
        with pytest.raises(SystemExit) as info:
            tool.main(["convert", "--format", "haiku_byol", str(source), out])
        assert str(info.value.code).startswith(expected) and "\n" not in str(info.value.code), info.value.code
        assert "Traceback" not in capsys.readouterr().err and not os.path.exists(out)
    with pytest.raises(SystemExit):
        tool.main(["--debug", "convert", "--format", "haiku_byol", str(bomb), out])
    err = capsys.readouterr().err
    assert "Traceback" in err and "PickleLimitError" in err


def test_recursive_container_checkpoint_does_not_loop_in_benchmark_weights(tmp_path):
    """The issue's 1.3 KB file: {"model": {"model": ...itself...}} sent --weights into an endless loop."""
    import torch

    from ssl_zoo.model_zoo.weights import load_weights

    d = {"epoch": 1, "note": "x"}
    d["model"] = d
    path = tmp_path / "recursive.pth"
    torch.save({"state_dict": d, "epoch": 3}, path)
    assert path.stat().st_size < 4000
    with pytest.raises(ValueError, match="nest in a cycle"):
        load_weights(str(path))
