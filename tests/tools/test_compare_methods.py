"""``tools/compare_methods.py`` end to end: each config trained by ``tools/train_net.py`` in its
own process (3 iterations, no kNN), the table built from each run's ``summary.json`` and last
``metrics.jsonl`` values, a failing config reported without stopping the others, and
``--skip-existing`` reusing finished runs."""
import json
import os
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO_ROOT, "tools", "compare_methods.py")


def _table_rows(path):
    """Markdown pipe table -> list of {header: cell}."""
    lines = [line for line in open(path).read().splitlines() if line.startswith("|")]
    split = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return [dict(zip(split[0], row)) for row in split[2:]]


def _last(metrics_path, key):
    value = None
    for line in open(metrics_path):
        value = json.loads(line).get(key, value)
    return value


def test_compare_methods_trains_each_config_and_writes_the_table(tmp_path):
    bad = tmp_path / "bad_key.yaml"  # outside configs/: named by its file name, run kept in out-root
    bad.write_text('_BASE_: "%s"\nBYOL:\n  NOT_A_KEY: 1\n' % os.path.join(REPO_ROOT, "configs", "byol", "quickstart.yaml"))
    configs = ["configs/byol/quickstart.yaml", "configs/byol/ablations/quickstart_lars_tau0.yaml", str(bad)]
    out = tmp_path / "runs"
    cmd = [sys.executable, TOOL, "--configs", *configs, "--out-root", str(out), "--max-iter", "3", "--no-knn",
           "--threads", "1", "--opts", "SOLVER.IMS_PER_BATCH", "32", "LOG.COLLAPSE_PERIOD", "1"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # one config failed
    rows = {r["config"]: r for r in _table_rows(out / "results.md")}
    assert list(rows) == ["byol/quickstart", "byol/ablations/quickstart_lars_tau0", "bad_key"]
    assert rows["bad_key"]["status"].startswith("failed")
    assert "NOT_A_KEY" in (out / "bad_key" / "compare_log.txt").read_text()  # the reason is in its log
    for name in ("byol/quickstart", "byol/ablations/quickstart_lars_tau0"):
        run = out / name
        assert rows[name]["status"] == "ok" and rows[name]["iterations"] == "3"
        assert rows[name]["kNN top-1"] == "-"  # --no-knn
        # the collapse columns are the run's last logged values
        assert float(rows[name]["effective rank"]) == round(_last(run / "metrics.jsonl", "effective_rank"), 3)
        assert float(rows[name]["final loss"]) == round(json.load(open(run / "summary.json"))["final_loss"], 3)
    # the override reached the runs, and the LARS config its own optimiser
    tau0_cfg = (out / "byol/ablations/quickstart_lars_tau0" / "config.yaml").read_text()
    assert "OPTIMIZER: LARS" in tau0_cfg and "IMS_PER_BATCH: 32" in tau0_cfg

    # a second call reuses the finished run instead of training it again
    metrics = out / "byol/quickstart" / "metrics.jsonl"
    mtime = os.path.getmtime(metrics)
    again = subprocess.run([sys.executable, TOOL, "--configs", "configs/byol/quickstart.yaml", "--out-root", str(out),
                            "--skip-existing", "--table", str(tmp_path / "again.md")],
                           cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert _table_rows(tmp_path / "again.md")[0]["status"] == "reused"
    assert os.path.getmtime(metrics) == mtime
