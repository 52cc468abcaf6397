"""INPUT.BACKEND "gpu": bytes-only workers, decode + crop + augmentation on the device.

Checked on CPU tensors (CI has no GPU) against the PIL reference path with identical random
parameters: decoding equals PIL's; the crop boxes follow torchvision's RandomResizedCrop per
image size; a whole view equals PIL crop + torchvision ops up to PIL's uint8 rounding of the
resize (tolerance: max 2/255, mean < 0.2/255, before normalisation)."""
import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TVF
from PIL import Image
from torchvision.io import read_file
from torchvision.transforms import InterpolationMode

from ssl_zoo.data.build import make_train_data
from ssl_zoo.data.catalog import build_dataset
from ssl_zoo.data.encoded import DecodeAugmentOnDevice, EncodedFiles, collate_encoded
from ssl_zoo.data.transforms import IMAGENET_MEAN, IMAGENET_STD, BatchedMultiViewAugment, ViewSpec, get_view_specs
from ssl_zoo.data.transforms.decode import decode_images, pad_to_batch
from ssl_zoo.data.transforms.geometry import sample_resized_crop_params

SIZES = [(60, 80), (72, 50), (64, 64), (90, 70)]


def _write_images(root, sizes=SIZES, seed=0, fmt="JPEG"):
    rng = np.random.default_rng(seed)
    paths = []
    for i, (h, w) in enumerate(sizes):
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        img = np.stack([xx, yy, 0.5 + 0.5 * np.sin(7 * xx * yy)], -1) * 0.85 + 0.15 * rng.random((h, w, 3))
        d = root / f"class_{i % 2}"
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{i}.{'jpg' if fmt == 'JPEG' else 'png'}"
        Image.fromarray((img * 255).astype(np.uint8)).save(path, format=fmt, quality=90)
        paths.append(str(path))
    return paths


def test_decode_equals_pil_and_padding(tmp_path):
    paths = _write_images(tmp_path) + _write_images(tmp_path / "png", sizes=[(40, 30)], fmt="PNG")
    gray = tmp_path / "gray.jpg"
    Image.fromarray((np.arange(35 * 45) % 251).astype(np.uint8).reshape(35, 45)).save(gray, quality=90)
    paths.append(str(gray))
    images = decode_images([read_file(p) for p in paths], "cpu", names=paths)
    for path, img in zip(paths, images):
        with Image.open(path) as pil:
            ref = torch.from_numpy(np.array(pil.convert("RGB"))).permute(2, 0, 1)
        assert img.shape == ref.shape and img.dtype == torch.uint8
        assert torch.equal(img, ref)  # the same libjpeg-turbo decoder as PIL
    batch, sizes = pad_to_batch(images)
    assert batch.shape == (len(paths), 3, 90, 80)
    for b, img in enumerate(images):
        h, w = sizes[b].tolist()
        assert torch.equal(batch[b, :, :h, :w], img) and batch[b, :, h:].abs().sum() == 0 and batch[b, :, :, w:].abs().sum() == 0


def test_corrupt_file_is_named(tmp_path):
    good = _write_images(tmp_path, sizes=[(40, 40)])[0]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(read_file(good)[:40].numpy().tobytes())  # a truncated JPEG
    with pytest.raises(ValueError, match="bad.jpg"):
        decode_images([read_file(good), read_file(str(bad))], "cpu", names=[good, str(bad)])


def test_per_image_crop_boxes_follow_torchvision():
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    same = sample_resized_crop_params(64, 50, 70, (0.08, 1.0), (3 / 4, 4 / 3), generator=g())
    per_image = sample_resized_crop_params(64, torch.full((64,), 50), torch.full((64,), 70), (0.08, 1.0),
                                           (3 / 4, 4 / 3), generator=g())
    assert torch.equal(same, per_image)  # sizes as tensors: the same draws and boxes
    h = torch.tensor([50, 300, 40, 41] * 500)
    w = torch.tensor([70, 20, 400, 41] * 500)
    boxes = sample_resized_crop_params(len(h), h, w, (0.08, 1.0), (3 / 4, 4 / 3), generator=g())
    top, left, bh, bw = boxes.unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + bh <= h).all() and (left + bw <= w).all()
    torch.manual_seed(0)
    for k, (hh, ww) in enumerate([(50, 70), (300, 20), (40, 400), (41, 41)]):
        ours = (bh[k::4] * bw[k::4]).double() / (hh * ww)
        tv = torch.tensor([float(np.prod(TVF_crop_hw(hh, ww))) / (hh * ww) for _ in range(500)], dtype=torch.float64)
        for q in (0.25, 0.5, 0.75):  # area fraction quantiles agree within sampling noise
            assert abs(float(ours.quantile(q)) - float(tv.quantile(q))) < 0.1
    # Whole-image fallback for extreme shapes, as torchvision: (300 x 20) -> 27 x 20 centred.
    fb = sample_resized_crop_params(2, torch.tensor([300, 20]), torch.tensor([20, 300]), (1.0, 1.0), (3 / 4, 4 / 3))
    assert fb.tolist() == [[136, 0, 27, 20], [0, 136, 20, 27]]


def TVF_crop_hw(h, w):
    from torchvision.transforms import RandomResizedCrop

    _, _, ch, cw = RandomResizedCrop.get_params(torch.empty(1, h, w), (0.08, 1.0), (3 / 4, 4 / 3))
    return ch, cw


@pytest.mark.parametrize("sizes,out", [(SIZES, 32), ([(200, 260), (230, 180)], 64)])  # dense float / sparse uint8 resize
def test_gpu_path_view_equals_pil_crop_plus_torchvision_ops(tmp_path, sizes, out):
    """Same random parameters: decode + crop + flip + jitter + gray + blur + solarize + normalise
    of the gpu path = PIL RandomResizedCrop's resize + torchvision tensor ops, sample by sample."""
    paths = _write_images(tmp_path, sizes=sizes)
    spec = ViewSpec(size=out, blur_prob=0.5, solarize_prob=0.5, blur_kernel_fraction=0.2)
    aug = BatchedMultiViewAugment([spec], IMAGENET_MEAN, IMAGENET_STD, crop=True)
    transform = DecodeAugmentOnDevice(aug, torch.device("cpu"), seed=5, rank=0)
    batch = collate_encoded([EncodedFiles(_FakeDataset(paths))[i] for i in range(len(paths))])
    (view,), labels = transform(batch, iteration=7)
    assert view.shape == (len(paths), 3, out, out) and labels.tolist() == [0, 1, 0, 1][:len(paths)]
    # Re-draw the same parameters (same generator seed, same per-image sizes).
    from ssl_zoo.data.samplers import mix_seed

    _, sizes_t = pad_to_batch(decode_images(batch[0]))
    (p,) = aug.sample_params(len(paths), sizes_t, torch.Generator().manual_seed(mix_seed(5, 7, 0)))
    tv_ops = [TVF.adjust_brightness, TVF.adjust_contrast, TVF.adjust_saturation, TVF.adjust_hue]
    k = spec.blur_kernel_size
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    diffs = []
    for i, path in enumerate(paths):
        top, left, h, w = p.boxes[i].tolist()
        with Image.open(path) as pil:
            crop = TVF.resized_crop(pil.convert("RGB"), top, left, h, w, [out, out], InterpolationMode.BICUBIC)
        img = TVF.pil_to_tensor(crop).float() / 255
        img = TVF.hflip(img) if p.flip[i] else img
        if p.jitter[i]:
            for op in p.order[i].tolist():
                img = tv_ops[op](img, float(p.factors[i, op]))
        if p.grayscale[i]:
            img = TVF.rgb_to_grayscale(img, 3)
        if p.blur[i]:
            img = TVF.gaussian_blur(img, [k, k], [float(p.sigma[i])] * 2)
        if p.solarize[i]:
            img = TVF.solarize(img, 0.5)
        ours = view[i] * std + mean
        diffs.append((ours - img).abs())
    d = torch.stack(diffs)
    # measured: max 1.3-1.5/255, mean 0.004-0.13/255 (PIL rounds its two resize passes to uint8)
    assert float(d.max()) <= 2 / 255 and float(d.mean()) < 0.2 / 255


class _FakeDataset:
    def __init__(self, paths):
        self.samples = [(p, i % 2) for i, p in enumerate(paths)]


def test_make_train_data_gpu_backend_on_cpu(tmp_path):
    _write_images(tmp_path, sizes=SIZES * 2)
    specs = get_view_specs("byol", 32)

    def build():
        ds = build_dataset(str(tmp_path), train=True)
        return make_train_data(ds, specs=specs, backend="gpu", mean=IMAGENET_MEAN, std=IMAGENET_STD,
                               global_batch_size=4, seed=3, num_workers=0)

    data, again = build(), build()
    views, labels = data.batch_transform(next(data.iterator), 0)
    views2, labels2 = again.batch_transform(next(again.iterator), 0)
    assert [tuple(v.shape) for v in views] == [(4, 3, 32, 32)] * 2 and labels.shape == (4,)
    assert all(torch.equal(a, b) for a, b in zip(views, views2)) and torch.equal(labels, labels2)  # deterministic
    assert not torch.equal(views[0], views[1])  # two different views


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_backend_decode_and_augment_on_cuda(tmp_path):
    """nvJPEG decode within a few levels of the CPU decoder; the views are computed on the GPU."""
    paths = _write_images(tmp_path)
    files = [read_file(p) for p in paths]
    cpu, gpu = decode_images(files, "cpu"), decode_images(files, "cuda")
    for a, b in zip(cpu, gpu):
        assert b.is_cuda and float((a.float() - b.cpu().float()).abs().mean()) < 1.0
    aug = BatchedMultiViewAugment(get_view_specs("byol", 32), IMAGENET_MEAN, IMAGENET_STD)
    views, _ = DecodeAugmentOnDevice(aug, torch.device("cuda"), 0, 0)(collate_encoded(
        [EncodedFiles(_FakeDataset(paths))[i] for i in range(len(paths))]), 0)
    assert all(v.is_cuda and torch.isfinite(v).all() for v in views)
