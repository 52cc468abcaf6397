"""Multi-view augmentation: presets (``ViewSpec`` lists), a PIL reference path and a batched fast path.

See ``presets.py`` for the recipes (BYOL App. B, PROTOCOLS.md s.1 and s.8), ``pil.py`` for
torchvision per-image transforms, ``batched.py`` for the vectorised per-sample pipeline used
by the data loader's ``INPUT.BACKEND = "batched"``, built on the per-sample kernels of
``geometry.py`` (crop boxes, antialiased resize), ``colour.py`` (jitter, grayscale, solarize)
and ``filters.py`` (Gaussian blur). Config keys (``INPUT.AUG.*``) are translated into
ViewSpecs by the config adapter, ``ssl_zoo.data.build.view_specs_from_cfg``.
"""
from .batched import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BatchedMultiViewAugment,
    ViewParams,
    augment_view,
    sample_view_params,
)
from .pil import CropOnlyTransform, MultiViewPILTransform, build_eval_transform, view_transform
from .presets import (
    AUGMENTATION_REGISTRY,
    ViewSpec,
    blur_kernel_size,
    get_view_specs,
    multi_crop,
)

__all__ = [
    "AUGMENTATION_REGISTRY",
    "ViewSpec",
    "ViewParams",
    "blur_kernel_size",
    "get_view_specs",
    "multi_crop",
    "MultiViewPILTransform",
    "CropOnlyTransform",
    "view_transform",
    "build_eval_transform",
    "BatchedMultiViewAugment",
    "sample_view_params",
    "augment_view",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]
