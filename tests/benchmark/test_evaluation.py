"""Evaluation tooling (issue #5) against naive references and hand computations.

The multi-lr optimiser and the linear heads, the held-out validation and semi-supervised
splits, foreign checkpoint prefixes, the evaluation / training batches of ``LabelledSplit``,
the kNN / linear (fast and faithful) / semi-supervised protocols, and SimCLR's subset lists.
Everything runs on tiny in-memory sets (8 px images, a one-conv network) on the CPU.
"""
import os
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from model_zoo_fixtures import LocalServer
from torch import nn
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

from ssl_zoo.config import get_cfg
from ssl_zoo.data.datasets import ImageFolderDataset, InMemoryImageDataset
from ssl_zoo.data.samplers import mix_seed
from ssl_zoo.data.subset import holdout_split
from ssl_zoo.data.transforms.presets import ViewSpec
from ssl_zoo.benchmark import eval_setup as ES, finetune as FT, knn as KNN, linear as LIN
from ssl_zoo.benchmark.splits import LabelledSplit
from ssl_zoo.evaluation.knn import knn_accuracy
from ssl_zoo.benchmark.linear_heads import LinearHeads, MultiLRSGD, head_accuracy, train_heads
from ssl_zoo.solver.schedules import cosine_factor
from ssl_zoo.model_zoo.weights import load_backbone_weights, load_weights, match_backbone_state

torch.set_num_threads(1)
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
CPU = torch.device("cpu")


# ----------------------------------------------------------------------------- fixtures
class TinyNet(nn.Module):
    """conv 3x3 -> BN (non-trivial running statistics) -> ReLU -> global average pool: [B,3,S,S] -> [B,8]."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.bn = nn.BatchNorm2d(8)
            self.bn.running_mean.normal_(0, 0.1)
            self.bn.running_var.uniform_(0.5, 1.5)
            self.bn.weight.data.uniform_(0.5, 1.5)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x))).mean((2, 3))


def colour_set(n: int, classes: int = 3, size=(8, 8), seed: int = 0, noise: float = 40.0) -> InMemoryImageDataset:
    """Noisy images whose mean colour depends on the class (learnable by a linear probe)."""
    g = torch.Generator().manual_seed(seed)
    palette = torch.tensor([[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]], dtype=torch.float32)
    targets = (torch.arange(n) % classes)[torch.randperm(n, generator=g)]
    images = palette[targets][:, :, None, None] + noise * torch.randn(n, 3, *size, generator=g)
    images = images.clamp(0, 255).round().to(torch.uint8)
    return InMemoryImageDataset(images, targets, [f"c{i}" for i in range(classes)])


def make_setup(train_ds, test_ds, backbone, val_fraction=0.1, cache_dir="", cache_key="", device=CPU) -> ES.EvalSetup:
    """An EvalSetup as ``build_eval_setup`` makes one (frozen backbone, seeded held-out split)."""
    common = dict(image_size=train_ds.images.shape[-1], mean=MEAN, std=STD, seed=3, device=device)
    train, test = LabelledSplit(train_ds, **common), LabelledSplit(test_ds, **common)
    rest, val = holdout_split(train.targets, fraction=val_fraction, seed=0)
    backbone.to(device).eval()
    for p in backbone.parameters():
        p.requires_grad_(False)
    return ES.EvalSetup(backbone=backbone, train=train, test=test, rest_idx=rest, val_idx=val, device=device,
                       batch_size=64, seed=3, cache_dir=cache_dir, cache_key=cache_key)


def naive_eval_image(img_u8: torch.Tensor, size: int) -> torch.Tensor:
    """torchvision's evaluation pipeline on one float image: Resize(round(S / 0.875)) bicubic,
    clipped to [0, 1] (as PIL's uint8 output is), CenterCrop(S), normalise."""
    x = T.Resize(round(size / 0.875), InterpolationMode.BICUBIC, antialias=True)(img_u8.float() / 255).clamp(0, 1)
    x = T.CenterCrop(size)(x)
    return (x - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)


def write_image_folder(root, per_class: int, classes: int = 2, size: int = 8, prefix: str = "img") -> list:
    """root/c<k>/<prefix>_<k>_<i>.png; returns the paths in ImageFolder order."""
    rng = np.random.default_rng(0)
    paths = []
    for c in range(classes):
        os.makedirs(os.path.join(root, f"c{c}"), exist_ok=True)
        for i in range(per_class):
            p = os.path.join(root, f"c{c}", f"{prefix}_{c}_{i}.png")
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(p)
            paths.append(p)
    return paths


# ----------------------------------------------------------------------------- optimiser, heads
@pytest.mark.parametrize("momentum,nesterov,wd", [(0.9, True, 0.0), (0.9, True, 1e-2), (0.9, False, 1e-2),
                                                  (0.0, False, 0.0)])
def test_multilr_sgd_equals_torch_sgd_per_head(momentum, nesterov, wd):
    """Head h of MultiLRSGD == torch.optim.SGD on head h alone at lr_h x cosine factor."""
    H, C, D, steps = 3, 4, 5, 7
    lrs = [0.5, 0.1, 0.02]
    g = torch.Generator().manual_seed(0)
    w0, b0 = torch.randn(H, C, D, generator=g), torch.randn(H, C, generator=g)
    W, Bb = nn.Parameter(w0.clone()), nn.Parameter(b0.clone())
    opt = MultiLRSGD([W, Bb], lrs, momentum=momentum, nesterov=nesterov, weight_decay=wd)
    refs = [(nn.Parameter(w0[h].clone()), nn.Parameter(b0[h].clone())) for h in range(H)]
    ref_opts = [torch.optim.SGD(refs[h], lr=lrs[h], momentum=momentum, nesterov=nesterov, weight_decay=wd)
                for h in range(H)]
    for s in range(steps):
        x, y = torch.randn(6, D, generator=g), torch.randint(0, C, (6,), generator=g)
        factor = cosine_factor(s, steps)
        loss = sum(F.cross_entropy(x @ W[h].T + Bb[h], y) for h in range(H))
        opt.zero_grad()
        loss.backward()
        opt.step(factor)
        for h, (w, b) in enumerate(refs):
            ref_opts[h].param_groups[0]["lr"] = lrs[h] * factor
            ref_opts[h].zero_grad()
            F.cross_entropy(x @ w.T + b, y).backward()
            ref_opts[h].step()
    for h, (w, b) in enumerate(refs):
        torch.testing.assert_close(W[h].detach(), w.detach())
        torch.testing.assert_close(Bb[h].detach(), b.detach())
    assert not torch.allclose(W[0], W[2])  # the lrs really differ per head


def test_cosine_factor_endpoints():
    assert cosine_factor(0, 10) == 1.0 and cosine_factor(5, 10) == pytest.approx(0.5)
    assert cosine_factor(10, 10) == pytest.approx(0.0) and cosine_factor(12, 10) == pytest.approx(0.0)


def _blobs(n, d=4, classes=3, spread=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    return 3.0 * torch.eye(classes, d)[y] + spread * torch.randn(n, d, generator=g), y


def _epoch_batches(x, y, bs, weights_of=None, keep=None):
    """Seeded shuffled batches; ``keep`` (bool [N]) drops samples from each batch (same batches otherwise)."""
    def batches(epoch):
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(100 + epoch))
        for s in range(0, len(x), bs):
            idx = order[s:s + bs]
            if keep is not None:
                idx = idx[keep[idx]]
            yield x[idx], y[idx], None if weights_of is None else weights_of(idx)
    return batches


def test_train_heads_separable_blobs_reach_full_accuracy():
    x, y = _blobs(300)
    heads = LinearHeads(4, 3, 3, seed=0)
    train_heads(heads, [0.5, 0.1, 0.02], _epoch_batches(x, y, 32), epochs=6, steps_per_epoch=10)
    acc = head_accuracy(heads, x, y)
    assert acc["top1"].tolist() == [100.0] * 3 and acc["top5"].tolist() == [100.0] * 3
    assert acc["top1"].shape == (3,)


def test_train_heads_zero_weight_excludes_samples():
    """Head 0 with weight 0 on odd samples == a head trained on the even samples only (same
    batches); head 1 (weight 1 everywhere) == a head trained on everything."""
    x, y = _blobs(200, spread=2.0, seed=1)  # overlapping: gradients stay non-trivial
    keep = torch.arange(200) % 2 == 0

    def weights_of(idx):
        return torch.stack([keep[idx].float(), torch.ones(len(idx))])

    both = LinearHeads(4, 3, 2, seed=5)
    train_heads(both, [0.3, 0.1], _epoch_batches(x, y, 16, weights_of), epochs=3, steps_per_epoch=13)
    half = LinearHeads(4, 3, 1, seed=5)
    train_heads(half, [0.3], _epoch_batches(x, y, 16, keep=keep), epochs=3, steps_per_epoch=13)
    full = LinearHeads(4, 3, 1, seed=5)
    train_heads(full, [0.1], _epoch_batches(x, y, 16), epochs=3, steps_per_epoch=13)
    torch.testing.assert_close(both.weight[0], half.weight[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(both.bias[0], half.bias[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(both.weight[1], full.weight[0], rtol=1e-5, atol=1e-6)
    assert (both.weight[0] - full.weight[0]).abs().max() > 1e-3  # masking changed the result


# ----------------------------------------------------------------------------- splits
def test_holdout_split_fraction_size_seed():
    targets = torch.cat([torch.full((n,), c) for c, n in enumerate((50, 30, 20))])
    targets = targets[torch.randperm(100, generator=torch.Generator().manual_seed(0))]
    rest, val = holdout_split(targets, fraction=0.1, seed=0)
    assert set(rest.tolist()).isdisjoint(val.tolist())
    assert sorted(rest.tolist() + val.tolist()) == list(range(100))
    assert torch.equal(rest, rest.sort().values) and torch.equal(val, val.sort().values)
    assert torch.bincount(targets[val], minlength=3).tolist() == [5, 3, 2]  # 10% of every class
    rest2, val2 = holdout_split(targets, fraction=0.1, seed=0)
    assert torch.equal(val, val2) and torch.equal(rest, rest2)
    assert not torch.equal(val, holdout_split(targets, fraction=0.1, seed=1)[1])
    rest, val = holdout_split(targets, size=17, seed=4)
    assert len(val) == 17 and len(rest) == 83 and sorted(rest.tolist() + val.tolist()) == list(range(100))
    assert torch.equal(val, holdout_split(targets, size=17, seed=4)[1])
    with pytest.raises(ValueError):
        holdout_split(targets, size=100)


def _subset_setup(targets, names=("toy_train", "toy_test"), dataset=None, val_fraction=0.1):
    rest, val = holdout_split(targets, fraction=val_fraction, seed=0)
    return types.SimpleNamespace(dataset_names=names, rest_idx=rest, val_idx=val,
                                 train=types.SimpleNamespace(targets=torch.as_tensor(targets), dataset=dataset))


def test_semi_subset_balanced_nested_outside_validation():
    targets = (torch.arange(1200) % 3)[torch.randperm(1200, generator=torch.Generator().manual_seed(1))]
    setup = _subset_setup(targets)
    cfg = get_cfg()
    (s10, setup10), (s1, _) = FT.semi_subset(cfg, setup, 10), FT.semi_subset(cfg, setup, 1)
    assert setup10 is setup  # no list: the validation split stays
    for s in (s10, s1):
        assert set(s.tolist()).isdisjoint(setup.val_idx.tolist())
        assert len(set(s.tolist())) == len(s)
    # 360 of the 400 images of each class are outside the validation split: 36 (10%), 4 (1%)
    assert torch.bincount(targets[s10], minlength=3).tolist() == [36, 36, 36]
    assert torch.bincount(targets[s1], minlength=3).tolist() == [4, 4, 4]
    assert set(s1.tolist()) <= set(s10.tolist())
    assert torch.equal(s10, FT.semi_subset(cfg, setup, 10)[0])
    cfg.BENCHMARK.SEMI.SUBSET_SEED = 1
    assert not torch.equal(s10, FT.semi_subset(cfg, setup, 10)[0])


def test_subset_list_file_for_file_dataset(tmp_path):
    paths = write_image_folder(str(tmp_path / "data"), per_class=4)
    ds = ImageFolderDataset(str(tmp_path / "data"))
    names = [os.path.basename(p) for p in paths]
    listed = [names[1], names[2], names[6]]  # indices 1, 2, 6 of the dataset
    lst = tmp_path / "list.txt"
    lst.write_text("# a comment\n" + "\n".join(listed) + "\n\n")
    setup = _subset_setup(ds.targets, dataset=ds)
    setup.val_idx = torch.tensor([2, 5])  # image 2 is listed: the list is used whole, validation redrawn
    cfg = get_cfg()
    cfg.BENCHMARK.SEMI.SUBSET_LIST = str(lst)
    subset, semi_setup = FT.semi_subset(cfg, setup, 10)
    assert subset.tolist() == [1, 2, 6]
    assert len(semi_setup.val_idx) == 2 and set(semi_setup.val_idx.tolist()).isdisjoint({1, 2, 6})
    assert sorted(semi_setup.val_idx.tolist() + semi_setup.rest_idx.tolist()) == list(range(len(ds)))
    assert setup.val_idx.tolist() == [2, 5]  # the caller's setup is untouched
    lst.write_text("\n".join(listed + ["nowhere_1.JPEG"]))
    with pytest.raises(ValueError, match="nowhere_1.JPEG"):
        FT.semi_subset(cfg, setup, 10)
    with pytest.raises(TypeError, match="file-backed"):
        FT._read_subset_list(str(lst), colour_set(4))


def test_imagenet_semi_subset_downloads_simclr_list(tmp_path, monkeypatch):
    """An imagenet_* train set without SUBSET_LIST uses SimCLR's list, downloaded once into the cache."""
    paths = write_image_folder(str(tmp_path / "imagenet" / "train"), per_class=3, prefix="n0144")
    ds = ImageFolderDataset(str(tmp_path / "imagenet" / "train"))
    listing = "\n".join(os.path.basename(paths[i]) for i in (0, 4, 5)) + "\n"
    with LocalServer({"/subsets/10percent.txt": listing.encode()}) as server:
        monkeypatch.setattr(FT, "SIMCLR_SUBSET_URL", server.url + "/subsets/{}percent.txt")
        monkeypatch.setenv("SSL_ZOO_CACHE", str(tmp_path / "cache"))
        monkeypatch.delenv("SSL_ZOO_OFFLINE", raising=False)
        setup = _subset_setup(ds.targets, names=("imagenet_train", "imagenet_val"), dataset=ds)
        setup.val_idx = torch.tensor([4])
        cfg = get_cfg()
        assert FT.semi_subset(cfg, setup, 10)[0].tolist() == [0, 4, 5]  # whole, though 4 was in validation
        subset, semi_setup = FT.semi_subset(cfg, setup, 10)  # second call: from the cache
        assert subset.tolist() == [0, 4, 5] and len(semi_setup.val_idx) == 1
        assert semi_setup.val_idx.item() not in (0, 4, 5)
        assert [r["path"] for r in server.requests] == ["/subsets/10percent.txt"]
        cached = list((tmp_path / "cache").rglob("simclr_imagenet_10percent.txt"))
        assert len(cached) == 1 and cached[0].read_text() == listing
        from ssl_zoo.model_zoo.download import DownloadError

        with pytest.raises(DownloadError):  # 1% is not served
            FT.semi_subset(cfg, setup, 1)


# ----------------------------------------------------------------------------- weights
def _net_state(seed):
    return {k: v.clone() for k, v in TinyNet(seed).state_dict().items()}


def _layouts():
    online, other = _net_state(1), _net_state(2)
    extra = {"head.weight": torch.randn(3, 8), "queue": torch.randn(8, 16)}

    def pre(p, sd):
        return {p + k: v for k, v in sd.items()}

    return online, {
        "bare": ({**online}, ""),
        "module": (pre("module.", online), ""),
        "backbone": ({**pre("backbone.", online), **pre("projector.", {"0.weight": torch.randn(4, 8)})}, "backbone."),
        # MoCo v2: key encoder first, identical structure: the query encoder must win
        "moco": ({**pre("module.encoder_k.", other), **pre("module.encoder_q.", online), **pre("module.", extra)},
                 "encoder_q."),
        "mocov3": ({**pre("module.momentum_encoder.", other), **pre("module.base_encoder.", online)}, "base_encoder."),
        "byol": ({**pre("target_network.encoder.", other), **pre("online_network.encoder.", online)},
                 "online_network.encoder."),
        "dino": ({**pre("teacher.backbone.", other), **pre("student.backbone.", online)}, "student.backbone."),
        "train_net": ({**pre("target_backbone.", other), **pre("backbone.", online)}, "backbone."),
    }


@pytest.mark.parametrize("layout", list(_layouts()[1]))
def test_match_backbone_state_finds_prefix(layout):
    online, layouts = _layouts()
    state, prefix = layouts[layout]
    picked, used = match_backbone_state(state, TinyNet())
    assert used == prefix
    assert set(picked) == set(online)
    for k in online:
        assert torch.equal(picked[k], online[k]), k


def test_match_backbone_state_errors_name_keys():
    online = _net_state(1)
    no_var = {f"backbone.{k}": v for k, v in online.items() if k != "bn.running_var"}
    with pytest.raises(ValueError, match=r"bn\.running_var"):
        match_backbone_state(no_var, TinyNet(), source="ckpt.pth")
    no_count = {k: v for k, v in online.items() if not k.endswith("num_batches_tracked")}
    picked, _ = match_backbone_state(no_count, TinyNet())  # num_batches_tracked may be absent
    assert "bn.num_batches_tracked" not in picked
    wrong = {**online, "conv.weight": torch.zeros(8, 3, 5, 5)}
    with pytest.raises(ValueError, match=r"conv\.weight.*\(8, 3, 5, 5\).*\(8, 3, 3, 3\)"):
        match_backbone_state(wrong, TinyNet())
    with pytest.raises(ValueError, match="conv.weight"):
        match_backbone_state({"something.else": torch.zeros(1)}, TinyNet())


def test_load_weights_sources(tmp_path):
    assert load_weights("random") == (None, "random init") and load_weights("")[0] is None
    missing = str(tmp_path / "nope" / "model_final.pth")
    with pytest.raises(FileNotFoundError, match="nope/model_final.pth"):
        load_weights(missing)
    online, other = _net_state(1), _net_state(2)
    # a tools/train_net.py checkpoint
    ckpt = {"model": {**{f"backbone.{k}": v for k, v in online.items()},
                      **{f"target_backbone.{k}": v for k, v in other.items()},
                      "projector.0.weight": torch.randn(4, 8)},
            "optimizer": {"state": {}, "param_groups": []}, "iteration": 10}
    path = str(tmp_path / "model_final.pth")
    torch.save(ckpt, path)
    net = TinyNet(0)
    assert load_backbone_weights(net, path) == os.path.abspath(path)
    for k, v in net.state_dict().items():
        assert torch.equal(v, online[k]), k
    # another framework's {"state_dict": ...} container
    torch.save({"epoch": 100, "arch": "tiny", "state_dict": {f"module.encoder_q.{k}": v for k, v in online.items()}},
               str(tmp_path / "moco.pth.tar"))
    state, desc = load_weights(str(tmp_path / "moco.pth.tar"))
    assert set(state) == {f"module.encoder_q.{k}" for k in online}
    net = TinyNet(0)
    load_backbone_weights(net, str(tmp_path / "moco.pth.tar"))
    assert all(torch.equal(v, online[k]) for k, v in net.state_dict().items())
    assert load_backbone_weights(net, "random") == "random init"


# ----------------------------------------------------------------------------- LabelledSplit
@pytest.mark.parametrize("size", [(8, 8), (8, 12), (13, 8)])
def test_eval_batches_match_torchvision_reference(size):
    ds = colour_set(7, size=size, noise=90.0)
    split = LabelledSplit(ds, image_size=8, mean=MEAN, std=STD)
    got = list(split.eval_batches(batch_size=3))
    assert [len(b[2]) for b in got] == [3, 3, 1]
    x = torch.cat([b[0] for b in got])
    assert torch.equal(torch.cat([b[2] for b in got]), torch.arange(7))
    assert torch.equal(torch.cat([b[1] for b in got]), ds.targets)
    ref = torch.stack([naive_eval_image(im, 8) for im in ds.images])
    assert x.shape == ref.shape == (7, 3, 8, 8)
    torch.testing.assert_close(x, ref, rtol=1e-5, atol=1e-5)
    # world_size 2: rank r evaluates r::2
    for r in range(2):
        shard = LabelledSplit(ds, image_size=8, mean=MEAN, std=STD, rank=r, world_size=2)
        idx = torch.cat([b[2] for b in shard.eval_batches(batch_size=2)])
        assert idx.tolist() == list(range(r, 7, 2))


def test_train_batches_deterministic_cover_and_sharded():
    ds = colour_set(50)

    def epoch(split, e, bs=16):
        return [(x.clone(), y, i) for x, y, i in split.train_batches(None, bs, e)]

    split = LabelledSplit(ds, image_size=8, mean=MEAN, std=STD, seed=7)
    a, b, c = epoch(split, 0), epoch(split, 0), epoch(split, 1)
    assert [len(t[2]) for t in a] == [16, 16, 16, 2]
    for (xa, ya, ia), (xb, yb, ib) in zip(a, b):
        assert torch.equal(ia, ib) and torch.equal(xa, xb) and torch.equal(ya, ds.targets[ia])
        assert xa.shape[1:] == (3, 8, 8) and xa.dtype == torch.float32
    order = lambda batches: torch.cat([t[2] for t in batches])  # noqa: E731
    assert sorted(order(a).tolist()) == list(range(50)) and sorted(order(c).tolist()) == list(range(50))
    assert not torch.equal(order(a), order(c))
    other_seed = LabelledSplit(ds, image_size=8, mean=MEAN, std=STD, seed=8)
    assert not torch.equal(order(a), order(epoch(other_seed, 0)))  # the seed matters
    sub = torch.tensor([3, 9, 11, 20, 21, 40])
    got = torch.cat([i for _, _, i in split.train_batches(sub, 4, 2)])
    assert sorted(got.tolist()) == sub.tolist()
    ranks = [epoch(LabelledSplit(ds, image_size=8, mean=MEAN, std=STD, seed=7, rank=r, world_size=2), 0)
             for r in range(2)]
    for k, (_, _, i) in enumerate(a):
        assert torch.equal(torch.cat([ranks[0][k][2], ranks[1][k][2]]), i)


# ----------------------------------------------------------------------------- protocols
def test_run_knn_equals_naive_features():
    setup = make_setup(colour_set(90, seed=1, noise=70), colour_set(40, seed=2, noise=70), TinyNet(3))
    rows = KNN.run_knn(setup, ks=(20, 3), temperature=0.1)
    with torch.no_grad():
        def feats(ds):
            return F.normalize(torch.cat([setup.backbone(naive_eval_image(im, 8)[None]) for im in ds.images]), dim=1)

        train_f, test_f = feats(setup.train.dataset), feats(setup.test.dataset)
    for row, k in zip(rows, (20, 3)):
        want = knn_accuracy(train_f, setup.train.targets, test_f, setup.test.targets, k=k, temperature=0.1,
                            num_classes=3)
        assert row["task"] == "knn" and row["mode"] == f"k={k}"
        assert row["top1"] == pytest.approx(want["top1"]) and row["top5"] == pytest.approx(want["top5"])
    assert 0 < rows[0]["top1"] <= 100


class _Spy:
    """Wrap a function of module ``mod``; records its calls and keeps the results."""

    def __init__(self, monkeypatch, mod, name):
        self.fn, self.calls, self.results = getattr(mod, name), [], []
        monkeypatch.setattr(mod, name, self)

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        out = self.fn(*args, **kwargs)
        self.results.append(out)
        return out


def test_linear_fast_equals_faithful_without_augmentation(monkeypatch):
    """With an identity "augmentation" (full-image crop, no flip) every augmented copy is the
    same image, so fast mode (cached features) must train the same heads on the same batches
    as faithful mode, up to the float16 cache."""
    setup = make_setup(colour_set(150, noise=60), colour_set(45, seed=1, noise=60), TinyNet(0))
    identity = ViewSpec(size=8, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_prob=0.0, jitter_prob=0.0,
                        grayscale_prob=0.0, blur_prob=0.0, solarize_prob=0.0)
    setup.train.specs = [identity]
    trained = _Spy(monkeypatch, LIN, "train_heads")
    c = LIN.LinearConfig(lrs=(0.5, 0.05), epochs=3, batch_size=32, fast_aug_copies=2)
    faithful, fast = LIN.run_linear(setup, c, "both")
    heads_faithful, heads_fast = trained.results
    assert heads_faithful.weight.shape == (4, 3, 8)  # 2 selection heads + 2 final heads
    torch.testing.assert_close(heads_fast.weight, heads_faithful.weight, rtol=0, atol=1e-3)
    torch.testing.assert_close(heads_fast.bias, heads_faithful.bias, rtol=0, atol=1e-3)
    assert (heads_faithful.weight - LinearHeads(8, 3, 4, seed=3).weight).abs().max() > 0.05  # they did train
    assert fast["val_top1_per_lr"] == faithful["val_top1_per_lr"]
    assert fast["top1"] == faithful["top1"] and fast["best_lr"] == faithful["best_lr"]
    assert fast["top1_minus_faithful"] == 0.0


def test_linear_both_selects_on_validation_only(monkeypatch, tmp_path):
    setup = make_setup(colour_set(200), colour_set(60, seed=1), TinyNet(0), val_fraction=0.15,
                       cache_dir=str(tmp_path / "cache"), cache_key="tiny")
    n_val, n_test = len(setup.val_idx), len(setup.test)
    assert n_val == 30 and n_test == 60
    trained = _Spy(monkeypatch, LIN, "train_heads")
    evaluated = _Spy(monkeypatch, LIN, "head_accuracy")
    lrs = (0.4, 0.1, 0.01)
    rows = LIN.run_linear(setup, LIN.LinearConfig(lrs=lrs, epochs=5, batch_size=64, fast_aug_copies=2), "both")
    assert [r["mode"] for r in rows] == ["faithful", "fast"]
    test_f, test_y = ES.extract(setup, setup.backbone, setup.test)
    val_f, val_y = ES.extract(setup, setup.backbone, setup.train, setup.val_idx)
    is_val = torch.zeros(len(setup.train), dtype=torch.bool)
    is_val[setup.val_idx] = True
    for m, (row, heads) in enumerate(zip(rows, trained.results)):
        assert row["top1"] > 80 and row["top5"] == 100.0
        # sample weights of the training batches: selection heads skip exactly the validation images
        _, head_lrs, epoch_batches, epochs, steps = trained.calls[m][0]
        assert list(head_lrs) == list(lrs) * 2 and epochs == 5 and steps == 4
        g = torch.Generator().manual_seed(mix_seed(setup.seed, 1))
        order = torch.randperm(len(setup.train), generator=g)  # epoch 1's order (both modes)
        seen = torch.cat([w for _, _, w in epoch_batches(1)], dim=1)
        assert seen.shape == (6, 200)
        torch.testing.assert_close(seen[:3], (~is_val[order]).float().expand(3, -1))
        torch.testing.assert_close(seen[3:], torch.ones(3, 200))
        assert torch.equal(torch.cat([y for _, y, _ in epoch_batches(1)]), setup.train.targets[order])
        per_lr = row["val_top1_per_lr"]
        assert list(per_lr) == [str(lr) for lr in lrs]
        best = max(range(len(lrs)), key=lambda i: (per_lr[str(lrs[i])], -i))
        assert row["best_lr"] == lrs[best]
        # the validation numbers are those of the selection heads (trained without the validation images)
        sel = head_accuracy(heads, val_f, val_y)["top1"][:len(lrs)]
        assert [round(float(v), 2) for v in sel] == list(per_lr.values())
        # the test number is that of the final head (all of train) of the chosen lr
        final = LinearHeads(8, 3, 1)
        with torch.no_grad():
            final.weight.copy_(heads.weight[len(lrs) + best][None])
            final.bias.copy_(heads.bias[len(lrs) + best][None])
        assert row["top1"] == pytest.approx(float(head_accuracy(final, test_f, test_y)["top1"][0]))
        assert not any("test" in k for k in row if k not in ("top1", "top5"))
    # the test features were only ever given to a single head; the grid only saw validation features
    for (args, _), out in zip(evaluated.calls, evaluated.results):
        heads, feats, labels = args[:3]
        assert feats.shape[0] in (n_val, n_test)
        if feats.shape[0] == n_test:
            assert heads.num_heads == 1 and torch.equal(labels, test_y)
        else:
            assert heads.num_heads == 2 * len(lrs) and torch.equal(labels, val_y)
    assert [a[0][0].num_heads for a in evaluated.calls] == [6, 1, 6, 1]
    for m, row in enumerate(rows):  # the head evaluated on test is the chosen lr's final head
        heads, final = trained.results[m], evaluated.calls[2 * m + 1][0][0]
        best = list(lrs).index(row["best_lr"])
        assert torch.equal(final.weight[0], heads.weight[len(lrs) + best])
        assert torch.equal(final.bias[0], heads.bias[len(lrs) + best])
    fast = rows[1]
    assert {"speedup_vs_faithful", "top1_minus_faithful", "aug_copies"} <= set(fast)
    assert fast["top1_minus_faithful"] == pytest.approx(fast["top1"] - rows[0]["top1"])
    assert fast["speedup_vs_faithful"] == pytest.approx(rows[0]["seconds"] / fast["seconds"])
    assert abs(fast["top1_minus_faithful"]) <= 15
    # the fast mode's feature cache is reused by the next run: the same result without the encoder
    cached = list((tmp_path / "cache").glob("linear-tiny-k2-s3.pt"))
    assert len(cached) == 1
    monkeypatch.setattr(setup.train, "train_batches", None)  # a cache miss would need the encoder's batches
    again = LIN.run_linear_fast(setup, LIN.LinearConfig(lrs=lrs, epochs=5, batch_size=64, fast_aug_copies=2))
    assert again["top1"] == fast["top1"] and again["val_top1_per_lr"] == fast["val_top1_per_lr"]


def test_semi_finetunes_a_copy_and_selects_on_validation(monkeypatch):
    setup = make_setup(colour_set(120), colour_set(30, seed=1), TinyNet(0), val_fraction=0.25)
    before = {k: v.clone() for k, v in setup.backbone.state_dict().items()}
    subset = setup.rest_idx[::3]
    model = FT.finetune(setup, subset, 0.5, 2, FT.SemiConfig(batch_size=16))
    assert not torch.equal(model.backbone.conv.weight, before["conv.weight"])  # the whole network trains
    assert not torch.equal(model.backbone.bn.running_mean, before["bn.running_mean"])
    for k, v in setup.backbone.state_dict().items():  # the evaluated backbone is never modified
        assert torch.equal(v, before[k]), k
    assert not any(p.requires_grad for p in setup.backbone.parameters())

    acc = _Spy(monkeypatch, FT, "_accuracy")
    tuned = _Spy(monkeypatch, FT, "finetune")
    c = FT.SemiConfig(lrs=(0.001, 0.5), epochs=(1, 2), batch_size=32)
    row = FT.run_semi(setup, subset, "10%", c)
    assert [(a[2], a[3]) for a, _ in tuned.calls] == [(0.001, 1), (0.5, 1), (0.001, 2), (0.5, 2)]
    assert all(torch.equal(a[1], subset) for a, _ in tuned.calls)
    splits = [(a[2] is setup.test, a[3]) for a, _ in acc.calls]
    assert [t for t, _ in splits] == [False] * 4 + [True]  # 4 grid points on validation, then test once
    assert all(torch.equal(idx, setup.val_idx) for t, idx in splits if not t)
    grid = row["val_top1_grid"]
    assert list(grid) == ["lr=0.001,ep=1", "lr=0.5,ep=1", "lr=0.001,ep=2", "lr=0.5,ep=2"]
    best_key = max(grid, key=lambda k: (grid[k], -list(grid).index(k)))
    assert best_key == f"lr={row['best_lr']},ep={row['best_epochs']}"
    chosen = tuned.results[list(grid).index(best_key)].state_dict()  # the model evaluated on test is the chosen one
    tested = acc.calls[-1][0][1].state_dict()
    assert set(tested) == set(chosen) and all(torch.equal(tested[k], chosen[k]) for k in chosen)
    assert row["top1"] == acc.results[-1]["top1"] and row["labelled_images"] == len(subset)
    with pytest.raises(ValueError, match="overlaps the validation split"):
        FT.run_semi(setup, torch.cat([subset, setup.val_idx[:1]]), "10%", c)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_protocols_run_on_cuda(tmp_path):
    """Every protocol with the data, backbone and heads on the GPU (device placement of every tensor)."""
    cuda = torch.device("cuda")
    setup = make_setup(colour_set(120), colour_set(30, seed=1), TinyNet(0), device=cuda,
                       cache_dir=str(tmp_path), cache_key="gpu")
    knn = KNN.run_knn(setup, ks=(10,))
    assert 0 <= knn[0]["top1"] <= 100
    rows = LIN.run_linear(setup, LIN.LinearConfig(lrs=(0.4, 0.1), epochs=2, batch_size=32, fast_aug_copies=1), "both")
    assert [r["mode"] for r in rows] == ["faithful", "fast"] and all(0 <= r["top1"] <= 100 for r in rows)
    again = LIN.run_linear_fast(setup, LIN.LinearConfig(lrs=(0.4, 0.1), epochs=2, batch_size=32, fast_aug_copies=1))
    assert again["top1"] == rows[1]["top1"]  # from the on-disk cache, loaded onto the GPU
    row = FT.run_semi(setup, setup.rest_idx[::4], "25%", FT.SemiConfig(lrs=(0.1,), epochs=(1,), batch_size=16))
    assert 0 <= row["top1"] <= 100
