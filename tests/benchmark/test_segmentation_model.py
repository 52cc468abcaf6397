"""BYOL's FCN (App. D.4): output stride measured on an R50-shaped and a CIFAR-stem backbone, the
dilated conv5 keeping its weights, the head's layout, and an overfit of a two-image fixture."""
import torch
import torch.nn.functional as F
from torch import nn

from ssl_zoo.benchmark.dense.backbone import dilate_last_stage, feature_stride
from ssl_zoo.benchmark.segmentation.metrics import confusion_matrix, iou_from_confusion
from ssl_zoo.benchmark.segmentation.model import build_fcn
from ssl_zoo.modeling.backbones.build import build_backbone


def test_r50_output_stride_16_and_logits_at_input_size():
    fcn = build_fcn(build_backbone("resnet50", base_width=8), num_classes=21)
    x = torch.randn(1, 3, 96, 64)
    assert fcn.output_stride == 16
    assert fcn.logits_lowres(x).shape == (1, 21, 6, 4)
    assert fcn(x).shape == (1, 21, 96, 64)


def test_cifar_stem_stride_is_measured_not_assumed():
    backbone = build_backbone("resnet10", base_width=4, cifar_stem=True)
    assert feature_stride(backbone) == 8
    fcn = build_fcn(backbone, num_classes=3)
    assert fcn.output_stride == 4 and fcn.logits_lowres(torch.randn(2, 3, 32, 32)).shape == (2, 3, 8, 8)


def test_dilation_changes_every_conv5_3x3_and_keeps_weights():
    backbone = build_backbone("resnet50", base_width=8)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    dilate_last_stage(backbone)
    convs3 = [m for m in backbone.layer4.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs3) == 3 and all(m.dilation == (2, 2) and m.stride == (1, 1) and m.padding == (2, 2)
                                    for m in convs3)
    assert backbone.layer4[0].downsample[0].stride == (1, 1)
    assert backbone.layer3[0].conv2.stride == (2, 2)  # conv4 untouched
    after = backbone.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_head_is_two_dilated_256_convs_with_bn_relu_then_1x1():
    fcn = build_fcn(build_backbone("resnet18", base_width=8), num_classes=21)
    convs = [m for m in fcn.head.convs if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.dilation) for c in convs] == \
        [(64, 256, (3, 3), (6, 6)), (256, 256, (3, 3), (6, 6))]
    kinds = [type(m).__name__ for m in fcn.head.convs]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU"] * 2
    assert fcn.head.classifier.kernel_size == (1, 1) and fcn.head.classifier.out_channels == 21


def test_overfits_a_two_image_fixture():
    torch.manual_seed(0)
    x = torch.zeros(2, 3, 32, 32)
    y = torch.zeros(2, 32, 32, dtype=torch.long)
    x[0, 0, 8:24, 4:20] = 2.0   # red square: class 1
    y[0, 8:24, 4:20] = 1
    x[1, 2, 4:28, 16:30] = 2.0  # blue rectangle: class 2
    y[1, 4:28, 16:30] = 2
    y[:, 0, :] = 255            # a void row is never trained on
    fcn = build_fcn(build_backbone("resnet10", base_width=4, cifar_stem=True), num_classes=3, channels=16)
    opt = torch.optim.SGD(fcn.parameters(), lr=0.05, momentum=0.9)
    for _ in range(60):
        loss = F.cross_entropy(fcn(x), y, ignore_index=255)
        opt.zero_grad()
        loss.backward()
        opt.step()
    fcn.train()  # batch statistics, as during the fit
    with torch.no_grad():
        miou = iou_from_confusion(confusion_matrix(fcn(x).argmax(1), y, 3))["miou"]
    assert loss.item() < 0.2 and miou > 85
