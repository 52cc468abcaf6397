"""Losses: pure maths modules (tensors in, scalar out); each method builds its own."""
from ssl_zoo.modeling.losses.barlow_twins import BarlowTwinsLoss
from ssl_zoo.modeling.losses.byol import BYOLLoss, normalized_mse
from ssl_zoo.modeling.losses.infonce import InfoNCELoss
from ssl_zoo.modeling.losses.negative_cosine import NegativeCosineLoss
from ssl_zoo.modeling.losses.ntxent import NTXentLoss
from ssl_zoo.modeling.losses.unified import UnifiedLoss

__all__ = ["BYOLLoss", "normalized_mse", "NTXentLoss", "InfoNCELoss", "UnifiedLoss", "BarlowTwinsLoss",
           "NegativeCosineLoss"]
