"""Evaluation of representations: kNN monitor, collapse signals."""
from ssl_zoo.evaluation.collapse import effective_rank, normalized_std
from ssl_zoo.evaluation.knn import extract_features, knn_accuracy, knn_classify

__all__ = ["extract_features", "knn_classify", "knn_accuracy", "normalized_std", "effective_rank"]
