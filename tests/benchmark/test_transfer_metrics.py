"""Transfer metrics against hand computations from their definitions (VOC devkit, Table 3)."""
import pytest
import torch

from ssl_zoo.benchmark.transfer.metrics import (mean_per_class_accuracy, score_fn, top1_accuracy,
                                                voc11_average_precision, voc11_map)


def _onehot_scores(pred, num_classes=3):
    return torch.nn.functional.one_hot(torch.tensor(pred), num_classes).float()


def test_mean_per_class_weighs_classes_equally():
    labels = torch.tensor([0, 0, 0, 0, 1])
    scores = _onehot_scores([0, 0, 0, 1, 0])  # class 0: 3/4 right, class 1: 0/1; class 2 absent from labels
    assert top1_accuracy(scores, labels) == pytest.approx(60.0)
    assert mean_per_class_accuracy(scores, labels) == pytest.approx(100 * (0.75 + 0.0) / 2)


def test_11_point_ap_on_a_known_ranking():
    # ranked: P N P N P -> (recall, precision) = (1/3, 1), (1/3, 1/2), (2/3, 2/3), (2/3, 1/2), (1, 3/5)
    # interpolated at r = 0..0.3: 1; r = 0.4..0.6: 2/3; r = 0.7..1.0: 3/5  ->  (4 + 3 * 2/3 + 4 * 0.6) / 11
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    truth = torch.tensor([1, -1, 1, -1, 1])
    assert voc11_average_precision(scores, truth) == pytest.approx(8.4 / 11)


def test_difficult_only_images_are_ignored_not_negative():
    scores = torch.tensor([0.95, 0.9, 0.8, 0.7, 0.6, 0.5])
    truth = torch.tensor([0, 1, -1, 1, -1, 1])  # the top-scored image holds the class only as "difficult"
    assert voc11_average_precision(scores, truth) == pytest.approx(8.4 / 11)
    as_negative = voc11_average_precision(scores, torch.where(truth == 0, -1, truth))
    assert as_negative < 8.4 / 11 - 0.05


def test_map_averages_classes_and_perfect_ranking_is_100():
    truth = torch.tensor([[1, -1], [-1, 1], [-1, -1]])
    perfect = torch.tensor([[2.0, 0.0], [0.0, 2.0], [-1.0, -1.0]])
    assert voc11_map(perfect, truth) == pytest.approx(100.0)
    second = torch.tensor([[2.0, 1.0], [0.0, 0.5], [-1.0, -1.0]])  # class 1: N P -> 11-pt AP = 0.5
    assert voc11_map(second, truth) == pytest.approx(100 * (1.0 + 0.5) / 2)


def test_unknown_metric_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown transfer metric"):
        score_fn("auc")
