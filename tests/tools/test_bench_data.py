"""Smoke test of tools/bench_data.py --quick: both tables, the expected rows and ratio columns.

Not a timing test: --quick runs a batch of 4 for one iteration and says so."""
import math

from bench_data import CROP_IN_WORKERS, GPU_BACKEND, PATHS, main  # tools/ is on sys.path (conftest.py)


def test_bench_quick_tables(capsys, tmp_path):
    results = main(["--quick", "--json", str(tmp_path / "bench.json")])
    out = capsys.readouterr().out
    assert "NOT a measurement" in out and "logical CPUs" in out and "threads=1" in out
    aug = results["augmentation"]
    assert [(r["size"], r["path"]) for r in aug] == ([(32, p) for p in PATHS]
                                                     + [(224, p) for p in (*PATHS, CROP_IN_WORKERS, GPU_BACKEND)])
    assert {r["source"] for r in aug if r["size"] == 224} == {"375x500"}
    for r in aug:
        assert r["images/s"] > 0 and math.isclose(r["per core"], r["images/s"])  # 1 thread
    for size in (32, 224):
        rows = {r["path"]: r for r in aug if r["size"] == size}
        assert rows[PATHS[0]]["x lightly"] == 1.0
        for p in rows:
            assert math.isclose(rows[p]["x lightly"], rows[p]["images/s"] / rows[PATHS[0]]["images/s"])
    train = results["training"]
    assert [r["path"] for r in train] == list(PATHS) and train[2]["workers"] == 0
    for r in train:
        assert 0 <= r["blocked in next()"] <= r["data total"] <= 1 and r["compute ms"] > 0
    header = next(line for line in out.splitlines() if "x lightly" in line)
    assert "images/s" in header and "per core" in header
    assert "blocked in next()" in out and "data total" in out
    assert out.count("| ours batched ") == 3 and out.count(f"| {CROP_IN_WORKERS}") == 1
    assert out.count(f"| {GPU_BACKEND}") == 1 and (tmp_path / "bench.json").exists()
