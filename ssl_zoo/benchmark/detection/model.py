"""Faster R-CNN with a ResNet "C4" backbone (detectron2's R50-C4, MoCo's VOC protocol) from
``torchvision.models.detection`` parts.

PROTOCOLS.md s.6 / MoCo ``detection/configs/Base-RCNN-C4-BN.yaml``:

* backbone = stem + res2..res4 (``layer1..layer3``); the RPN and the RoI pooler read res4;
* box head = res5 (``layer4``, first block stride 2: 14x14 RoIs -> 7x7) + an extra BN after res5
  (MoCo's ``Res5ROIHeadsExtraNorm``) + global average pooling, on 14x14 RoIAlign with
  ``aligned=True`` (detectron2's ROIAlignV2, sampling ratio 0 = adaptive);
* every BN is trained (no FrozenBN, freeze_at 0); across processes the caller converts them to
  SyncBN (``ssl_zoo.modeling.batchnorm.convert_sync_batchnorm``);
* RPN: one 3x3 conv + objectness / box-delta 1x1 convs on res4, anchors of 5 sizes x 3 ratios per
  location, pre/post-NMS top-k 12000/2000 in training and 6000/1000 at test.

Feature stride and channels come from the backbone (not R50's 16 / 1024): the CIFAR ResNets'
3x3/1 stem without max-pool put res4 at stride 4.

Known differences from detectron2 (torchvision's parts): box regression uses smooth-L1 with
beta 1/9 (detectron2: L1) and torchvision's proposal sampling; the box predictor is initialised
as detectron2's (normal std 0.01 / 0.001).
"""
from __future__ import annotations

import copy
from typing import Dict, List, Sequence, Tuple

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.rpn import RPNHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import MultiScaleRoIAlign, roi_align

__all__ = ["C4Backbone", "Res5BoxHead", "AlignedRoIPool", "MultiScaleTransform", "build_c4_faster_rcnn",
           "feature_stride"]


def _block_stride(block: nn.Module) -> int:
    """Stride of a torchvision BasicBlock / Bottleneck (its ``stride`` attribute)."""
    s = getattr(block, "stride", 1)
    return int(s[0] if isinstance(s, (tuple, list)) else s)


def _stride_of(module: nn.Module) -> int:
    s = getattr(module, "stride", 1)
    return int(s[0] if isinstance(s, (tuple, list)) else s)


def feature_stride(resnet: nn.Module, num_stages: int = 3) -> int:
    """Total stride of stem + the first ``num_stages`` stages of a torchvision-style ResNet."""
    stride = _stride_of(resnet.conv1) * (_stride_of(resnet.maxpool) if isinstance(resnet.maxpool, nn.MaxPool2d) else 1)
    for i in range(1, num_stages + 1):
        for block in getattr(resnet, f"layer{i}"):
            stride *= _block_stride(block)
    return stride


def _out_channels(stage: nn.Sequential) -> int:
    last = stage[-1]
    bn = getattr(last, "bn3", None) or getattr(last, "bn2")
    return int(bn.num_features)


class C4Backbone(nn.Module):
    """Stem + res2..res4 of a ResNet: ``[B, 3, H, W] -> [B, C4, H/s, W/s]``.

    Attributes:
        out_channels: channels of res4 (1024 for R50, 64 for the width-16 CIFAR ResNet-10).
        stride: res4's stride (16 for R50, 4 with the CIFAR stem).
    """

    def __init__(self, resnet: nn.Module) -> None:
        super().__init__()
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool)
        self.res2, self.res3, self.res4 = resnet.layer1, resnet.layer2, resnet.layer3
        self.out_channels = _out_channels(resnet.layer3)
        self.stride = feature_stride(resnet)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res4(self.res3(self.res2(self.stem(x))))


class Res5BoxHead(nn.Module):
    """res5 + the extra BN MoCo adds after it + global average pooling.

    ``[R, C4, 14, 14] -> [R, C5]`` (res5's first block has stride 2: 7x7 before pooling).
    """

    def __init__(self, layer4: nn.Sequential) -> None:
        super().__init__()
        self.res5 = layer4
        self.out_channels = _out_channels(layer4)
        self.norm = nn.BatchNorm2d(self.out_channels)  # Res5ROIHeadsExtraNorm (MoCo detection/train_net.py)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.norm(self.res5(x))), 1)


class AlignedRoIPool(MultiScaleRoIAlign):
    """RoIAlign with ``aligned=True`` (detectron2's ROIAlignV2) on the single res4 map.

    torchvision's FasterRCNN only accepts a ``MultiScaleRoIAlign``, whose forward calls roi_align
    without ``aligned``; this subclass keeps the type and replaces the call. ``spatial_scale`` is
    1 / the backbone's stride.
    """

    def __init__(self, output_size: int, stride: int, sampling_ratio: int = 0) -> None:
        super().__init__(featmap_names=["0"], output_size=output_size, sampling_ratio=sampling_ratio)
        self.spatial_scale = 1.0 / stride

    def forward(self, x: Dict[str, torch.Tensor], boxes: List[torch.Tensor],
                image_shapes: List[Tuple[int, int]]) -> torch.Tensor:
        return roi_align(x["0"], boxes, self.output_size, spatial_scale=self.spatial_scale,
                         sampling_ratio=self.sampling_ratio, aligned=True)


class MultiScaleTransform(GeneralizedRCNNTransform):
    """Resize + normalise: shorter side drawn per image from ``train_sizes`` in training
    (detectron2's ResizeShortestEdge "choice"), ``test_size`` at test, longer side <= ``max_size``.
    (torchvision's own transform uses its last min size at test, which need not be the test size.)"""

    def __init__(self, train_sizes: Sequence[int], test_size: int, max_size: int,
                 image_mean: Sequence[float], image_std: Sequence[float]) -> None:
        super().__init__(tuple(train_sizes), max_size, list(image_mean), list(image_std))
        self.train_sizes, self.test_size = tuple(int(s) for s in train_sizes), int(test_size)

    def forward(self, images, targets=None):
        self.min_size = self.train_sizes if self.training else (self.test_size,)
        return super().forward(images, targets)


def _init_predictor(predictor: FastRCNNPredictor) -> None:
    # detectron2 FastRCNNOutputLayers: cls_score N(0, 0.01), bbox_pred N(0, 0.001), zero biases.
    nn.init.normal_(predictor.cls_score.weight, std=0.01)
    nn.init.normal_(predictor.bbox_pred.weight, std=0.001)
    for layer in (predictor.cls_score, predictor.bbox_pred):
        nn.init.zeros_(layer.bias)


def build_c4_faster_rcnn(
    resnet: nn.Module,
    num_classes: int,
    *,
    train_sizes: Sequence[int] = tuple(range(480, 801, 32)),
    test_size: int = 800,
    max_size: int = 1333,
    image_mean: Sequence[float] = (0.485, 0.456, 0.406),
    image_std: Sequence[float] = (0.229, 0.224, 0.225),
    anchor_sizes: Sequence[int] = (32, 64, 128, 256, 512),
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
    pooler_resolution: int = 14,
    rpn_pre_nms_top_n: Tuple[int, int] = (12000, 6000),
    rpn_post_nms_top_n: Tuple[int, int] = (2000, 1000),
    rpn_batch_size_per_image: int = 256,
    box_batch_size_per_image: int = 512,
    box_score_thresh: float = 0.05,
    box_nms_thresh: float = 0.5,
    detections_per_img: int = 100,
) -> FasterRCNN:
    """Faster R-CNN C4 on (a deep copy of) ``resnet``'s stages.

    Args:
        resnet: torchvision-style ResNet (``conv1, bn1, relu, maxpool, layer1..layer4``), weights
            already loaded; its BN layers stay trainable.
        num_classes: foreground classes (20 for VOC); the predictor has ``num_classes + 1`` outputs.
        train_sizes / test_size / max_size: shorter side choices in training, at test, longer-side cap.
        image_mean / image_std: normalisation of 0-1 RGB inputs (the backbone's pretraining values).
        anchor_sizes / aspect_ratios: anchors per res4 location (detectron2 defaults: 5 x 3).
        pooler_resolution: RoIAlign output (14 for C4).
        rpn_pre_nms_top_n / rpn_post_nms_top_n: (train, test) proposal counts.
        rpn_batch_size_per_image / box_batch_size_per_image: sampled anchors / RoIs per image.
        box_score_thresh / box_nms_thresh / detections_per_img: test-time post-processing.

    Returns:
        torchvision ``FasterRCNN``: ``model(images: List[[3, H, W] in 0-1], targets)`` -> loss dict in
        training, list of ``{boxes, labels, scores}`` in eval.
    """
    resnet = copy.deepcopy(resnet)
    backbone = C4Backbone(resnet)
    box_head = Res5BoxHead(resnet.layer4)
    anchors = AnchorGenerator(sizes=(tuple(anchor_sizes),), aspect_ratios=(tuple(aspect_ratios),))
    rpn_head = RPNHead(backbone.out_channels, anchors.num_anchors_per_location()[0])
    predictor = FastRCNNPredictor(box_head.out_channels, num_classes + 1)
    _init_predictor(predictor)
    model = FasterRCNN(
        backbone, num_classes=None, rpn_anchor_generator=anchors, rpn_head=rpn_head,
        box_roi_pool=AlignedRoIPool(pooler_resolution, backbone.stride), box_head=box_head, box_predictor=predictor,
        rpn_pre_nms_top_n_train=rpn_pre_nms_top_n[0], rpn_pre_nms_top_n_test=rpn_pre_nms_top_n[1],
        rpn_post_nms_top_n_train=rpn_post_nms_top_n[0], rpn_post_nms_top_n_test=rpn_post_nms_top_n[1],
        rpn_batch_size_per_image=rpn_batch_size_per_image, box_batch_size_per_image=box_batch_size_per_image,
        box_score_thresh=box_score_thresh, box_nms_thresh=box_nms_thresh, box_detections_per_img=detections_per_img,
    )
    model.transform = MultiScaleTransform(train_sizes, test_size, max_size, image_mean, image_std)
    return model
