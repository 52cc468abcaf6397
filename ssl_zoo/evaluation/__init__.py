"""The maths the training monitors and the benchmarks share: weighted kNN, collapse statistics,
top-k counting and the frozen-feature extraction loop. The benchmark application (protocols,
weights, results) is :mod:`ssl_zoo.benchmark`."""
from ssl_zoo.evaluation.collapse import effective_rank, normalized_std
from ssl_zoo.evaluation.features import extract_features
from ssl_zoo.evaluation.knn import knn_accuracy, knn_classify
from ssl_zoo.evaluation.metrics import topk_correct

__all__ = ["extract_features", "knn_classify", "knn_accuracy", "normalized_std", "effective_rank", "topk_correct"]
