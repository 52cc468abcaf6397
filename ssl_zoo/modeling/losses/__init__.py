"""Losses: pure maths modules (tensors in, scalar out), registered by class name."""
from ssl_zoo.utils.registry import Registry

LOSS_REGISTRY = Registry("LOSS")
LOSS_REGISTRY.__doc__ = "Loss classes (nn.Module, explicit constructor arguments), registered by class name."


def build_loss(name: str, **kwargs):
    """``LOSS_REGISTRY.get(name)(**kwargs)``."""
    return LOSS_REGISTRY.get(name)(**kwargs)


# Imported after LOSS_REGISTRY exists: the loss modules register themselves in it.
from ssl_zoo.modeling.losses.byol import BYOLLoss, normalized_mse  # noqa: E402
from ssl_zoo.modeling.losses.ntxent import NTXentLoss  # noqa: E402
from ssl_zoo.modeling.losses.infonce import InfoNCELoss  # noqa: E402
from ssl_zoo.modeling.losses.unified import UnifiedLoss  # noqa: E402
from ssl_zoo.modeling.losses.barlow_twins import BarlowTwinsLoss  # noqa: E402
from ssl_zoo.modeling.losses.negative_cosine import NegativeCosineLoss  # noqa: E402

__all__ = ["LOSS_REGISTRY", "build_loss", "BYOLLoss", "normalized_mse", "NTXentLoss", "InfoNCELoss",
           "UnifiedLoss", "BarlowTwinsLoss", "NegativeCosineLoss"]
