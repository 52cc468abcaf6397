"""C4 Faster R-CNN from torchvision parts: shapes, strides, aligned RoIAlign, a loss-decreasing overfit."""
import pytest
import torch
from torchvision.ops import roi_align

from ssl_zoo.benchmark.detection.model import (AlignedRoIPool, C4Backbone, Res5BoxHead, build_c4_faster_rcnn,
                                               feature_stride)
from ssl_zoo.modeling.backbones.build import build_backbone


def tiny_resnet(width=8):
    torch.manual_seed(0)
    return build_backbone("resnet10", base_width=width, cifar_stem=True)


def test_stride_and_channels_come_from_the_backbone():
    r50 = build_backbone("resnet50")
    b = C4Backbone(r50)
    assert (b.stride, b.out_channels) == (16, 1024)  # detectron2's R50-C4 res4
    assert Res5BoxHead(r50.layer4).out_channels == 2048
    r = tiny_resnet()
    b = C4Backbone(r)
    assert (b.stride, b.out_channels) == (4, 32)  # CIFAR stem: no stride-2 stem, no max-pool
    assert feature_stride(r, 4) == 8
    assert b(torch.rand(2, 3, 40, 48)).shape == (2, 32, 10, 12)


def test_box_head_is_res5_extra_bn_and_pooling():
    r = tiny_resnet()
    head = Res5BoxHead(r.layer4)
    assert isinstance(head.norm, torch.nn.BatchNorm2d) and head.norm.num_features == 64
    assert head(torch.rand(5, 32, 14, 14)).shape == (5, 64)
    assert head.res5(torch.rand(5, 32, 14, 14)).shape == (5, 64, 7, 7)  # stride-2 res5: 14 -> 7


def test_roi_pool_is_aligned_roi_align():
    feat = torch.rand(1, 3, 16, 16)
    boxes = [torch.tensor([[4.0, 8.0, 40.0, 30.0]])]
    pool = AlignedRoIPool(14, stride=4)
    out = pool({"0": feat}, boxes, [(64, 64)])
    assert torch.allclose(out, roi_align(feat, boxes, 14, spatial_scale=0.25, sampling_ratio=0, aligned=True))
    assert not torch.allclose(out, roi_align(feat, boxes, 14, spatial_scale=0.25, sampling_ratio=0, aligned=False))


def _model(**kw):
    args = dict(train_sizes=(48, 64), test_size=56, max_size=96, anchor_sizes=(16, 32), box_batch_size_per_image=32,
                rpn_pre_nms_top_n=(200, 100), rpn_post_nms_top_n=(50, 20), image_mean=(0.5,) * 3, image_std=(0.25,) * 3)
    args.update(kw)
    return build_c4_faster_rcnn(tiny_resnet(), num_classes=3, **args)


def test_train_losses_eval_outputs_and_sizes():
    model = _model()
    assert model.rpn._pre_nms_top_n == {"training": 200, "testing": 100}
    assert model.roi_heads.box_predictor.cls_score.out_features == 4
    assert all(not isinstance(m, torch.nn.Identity) for m in [model.backbone.stem[1]])  # BN kept, trainable
    assert all(p.requires_grad for p in model.parameters())  # freeze_at 0
    images = [torch.rand(3, 60, 80), torch.rand(3, 70, 50)]
    targets = [{"boxes": torch.tensor([[5.0, 5.0, 40.0, 30.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[0.0, 10.0, 30.0, 60.0]]), "labels": torch.tensor([3])}]
    model.train()
    image_list, _ = model.transform(images, targets)
    assert all(min(s) in (48, 64) for s in image_list.image_sizes)
    losses = model(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    model.eval()
    image_list, _ = model.transform(images)
    assert [min(s) for s in image_list.image_sizes] == [56, 56]
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2
    for o, img in zip(out, images):  # boxes come back in the original image's coordinates
        assert o["boxes"].shape[1] == 4 and o["boxes"].shape[0] == o["scores"].shape[0] == o["labels"].shape[0]
        if len(o["boxes"]):
            assert o["boxes"][:, 2].max() <= img.shape[2] and o["boxes"][:, 3].max() <= img.shape[1]


def test_overfits_a_tiny_fixture():
    torch.manual_seed(0)
    model = _model(train_sizes=(64,), test_size=64)
    gen = torch.Generator().manual_seed(1)
    images = [torch.rand(3, 64, 64, generator=gen) * 0.2 for _ in range(2)]
    images[0][:, 8:40, 10:42] = torch.tensor([0.9, 0.1, 0.1]).view(3, 1, 1)
    images[1][:, 20:52, 24:56] = torch.tensor([0.1, 0.1, 0.9]).view(3, 1, 1)
    targets = [{"boxes": torch.tensor([[10.0, 8.0, 42.0, 40.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[24.0, 20.0, 56.0, 52.0]]), "labels": torch.tensor([2])}]
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    model.train()
    history = []
    for _ in range(40):
        loss = sum(model(images, targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert sum(history[-5:]) / 5 < 0.5 * sum(history[:5]) / 5, history
