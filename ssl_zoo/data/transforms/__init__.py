"""Multi-view augmentation: presets (``ViewSpec`` lists), a PIL reference path and a batched fast path.

See ``presets.py`` for the recipes (BYOL App. B, PROTOCOLS.md s.1 and s.8), ``pil.py`` for
torchvision per-image transforms, ``batched.py`` + ``functional.py`` for the vectorised
per-sample implementation used by the data loader's ``INPUT.BACKEND = "batched"``.
"""
from .batched import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BatchedMultiViewAugment,
    ViewParams,
    augment_view,
    batched_augment_from_cfg,
    sample_view_params,
)
from .pil import CropOnlyTransform, MultiViewPILTransform, build_eval_transform, view_transform
from .presets import (
    AUGMENTATION_REGISTRY,
    ViewSpec,
    apply_overrides,
    blur_kernel_size,
    get_view_specs,
    multi_crop,
    view_specs_from_cfg,
)

__all__ = [
    "AUGMENTATION_REGISTRY",
    "ViewSpec",
    "ViewParams",
    "apply_overrides",
    "blur_kernel_size",
    "get_view_specs",
    "multi_crop",
    "view_specs_from_cfg",
    "MultiViewPILTransform",
    "CropOnlyTransform",
    "view_transform",
    "build_eval_transform",
    "BatchedMultiViewAugment",
    "batched_augment_from_cfg",
    "sample_view_params",
    "augment_view",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]
