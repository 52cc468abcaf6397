"""summary.png: the random-init baseline on the kNN panel, and no empty panel."""
import types

import matplotlib.figure
import pytest
import torch

from ssl_zoo.engine.hooks import KNNMonitor, TrainingSummary
from ssl_zoo.engine.trainer import MetricStorage


def _trainer(hooks, losses=()):
    storage = MetricStorage()
    for it, v in losses:
        storage.step = it
        storage.put_scalar("loss", v)
    return types.SimpleNamespace(hooks=hooks, storage=storage)


def _knn(history):
    knn = KNNMonitor(None, [], [], period=10, ks=(20,), temperature=0.1, device=torch.device("cpu"))
    knn.history = history
    return knn


@pytest.fixture
def figures(monkeypatch):
    saved = []
    real = matplotlib.figure.Figure.savefig

    def capture(fig, path, **kw):
        saved.append(fig)
        return real(fig, path, **kw)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", capture)
    return saved


def test_knn_panel_has_the_random_init_baseline(tmp_path, figures):
    knn = _knn([{"iteration": 0, "knn_top1_k20": 12.5}, {"iteration": 10, "knn_top1_k20": 30.0}])
    hook = TrainingSummary(str(tmp_path))
    hook.trainer = _trainer([knn])
    hook.loss_curve = [[5, 2.0], [10, 1.5]]
    hook._plot(str(tmp_path / "summary.png"))
    loss_ax, knn_ax = figures[0].axes
    assert list(loss_ax.lines[0].get_ydata()) == [2.0, 1.5]
    baseline = [ln for ln in knn_ax.lines if ln.get_label().startswith("random init")]
    assert len(baseline) == 1 and list(baseline[0].get_ydata()) == [12.5, 12.5]
    assert baseline[0].get_label() == "random init (12.5)"


def test_no_empty_panel_loss_from_the_storage_and_no_plot_without_data(tmp_path, figures):
    hook = TrainingSummary(str(tmp_path), period=100)  # period longer than the run: no loss_curve point
    hook.trainer = _trainer([_knn([])], losses=[(1, 3.0), (2, 2.5)])  # kNN monitor without any point
    hook._plot(str(tmp_path / "summary.png"))
    (ax,) = figures[0].axes  # one panel: the loss, read from the storage; no empty kNN panel
    assert list(ax.lines[0].get_ydata()) == [3.0, 2.5]
    hook.trainer = _trainer([])
    hook._plot(str(tmp_path / "empty.png"))
    assert len(figures) == 1 and not (tmp_path / "empty.png").exists()


def test_progress_lines_in_a_log_file(caplog):
    """Not a terminal: plain lines with count, percentage and ETA, and a final line."""
    import logging

    from ssl_zoo.utils.progress import track

    with caplog.at_level(logging.INFO, logger="ssl_zoo.utils.progress"):
        assert list(track(range(4), "features", tty=False, log_every_s=0.0)) == [0, 1, 2, 3]
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("features: 1/4 batches (25%)") and "eta 0:00:00" in lines[0]
    assert lines[-1].startswith("features: 4 batches done in 0:00:00")
