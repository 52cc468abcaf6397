"""One evaluation preprocessing (issue #12 item 8): the training kNN monitor
(``data.build.build_eval_loader``) and the benchmark (``LabelledSplit.eval_batches``) see the
same pixels: PROTOCOLS.md s.1 / s.3's resize to S / 0.875 and centre crop S."""
import torch
from torchvision import transforms as T

from ssl_zoo.benchmark.splits import LabelledSplit
from ssl_zoo.config import get_cfg
from ssl_zoo.data.build import build_eval_loader
from ssl_zoo.data.catalog import build_dataset
from ssl_zoo.data.transforms.geometry import eval_resize, resize_centre_crop

torch.set_num_threads(1)
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)


def test_monitor_and_benchmark_give_identical_batches():
    cfg = get_cfg()
    cfg.merge_from_list(["INPUT.IMAGE_SIZE", 32, "INPUT.MEAN", list(MEAN), "INPUT.STD", list(STD),
                         "TEST.IMS_PER_BATCH", 100, "DEVICE", "cpu"])
    monitor = next(iter(build_eval_loader(cfg, "builtin_cifar10_test")))
    ds = build_dataset("builtin_cifar10_test")
    split = LabelledSplit(ds, image_size=32, mean=MEAN, std=STD, crop_fraction=cfg.BENCHMARK.CROP_FRACTION,
                          resize=cfg.INPUT.EVAL_RESIZE)
    bench = next(iter(split.eval_batches(batch_size=100)))
    assert torch.equal(monitor[0], bench[0]) and torch.equal(monitor[1], bench[1])


def test_protocol_geometry_against_torchvision():
    """256 -> 224 at ImageNet scale, 37 -> 32 at CIFAR scale (PROTOCOLS.md s.1: resize 256, crop 224)."""
    assert eval_resize(224, 0.875) == 256 and eval_resize(32, 0.875) == 37 and eval_resize(32, 0.875, 40) == 40
    g = torch.Generator().manual_seed(0)
    img = torch.randint(0, 256, (1, 3, 30, 45), generator=g, dtype=torch.uint8)
    ours = resize_centre_crop(img, 24, 27)
    ref = T.CenterCrop(24)(T.Resize(27, interpolation=T.InterpolationMode.BICUBIC, antialias=True)(img.float() / 255))
    torch.testing.assert_close(ours, ref.clamp(0, 1), atol=1e-5, rtol=0)
    assert ours.shape == (1, 3, 24, 24)
