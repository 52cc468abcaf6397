"""DeepMind BYOL (Haiku pickle) conversion, TF-SAME padding, and the restricted unpickler."""
import os
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from model_zoo_fixtures import make_haiku_byol_pickle, numpy_haiku_resnet_forward

from ssl_zoo.model_zoo.convert import convert_checkpoint, safe_load_pickle
from ssl_zoo.model_zoo.convert.safe_pickle import UnsafePickleError
from ssl_zoo.modeling.backbones import build_backbone
from timm.layers import Conv2dSame
from timm.layers.pool2d_same import MaxPool2dSame

from ssl_zoo.modeling.backbones.tf_same_padding import convert_to_tf_same_padding_


@pytest.fixture(scope="module")
def byol_pickle():
    raw = make_haiku_byol_pickle(seed=0, base=8)
    return raw, safe_load_pickle(raw)


def _forward(model, x):
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(x)).double().numpy()


def _images(size, seed=1):
    return np.random.default_rng(seed).normal(size=(2, 3, size, size)).astype(np.float32)


def test_unpickled_structure_is_plain_data(byol_pickle):
    _, data = byol_pickle
    es = data["experiment_state"]
    assert isinstance(es, dict) and set(es) == {"online_params", "target_params", "online_state",
                                                "target_state", "opt_state"}
    assert isinstance(es["online_params"], dict)
    w = es["online_params"]["res_net50/~/initial_conv_1"]["w"]
    assert isinstance(w, np.ndarray) and w.shape == (7, 7, 3, 8)
    # a NamedTuple pickled by reference (field names unknown without importing byol): inert record
    assert es["opt_state"]["__type__"] == "byol.utils.optimizers.LarsState"
    assert int(data["step"]) == 1000


def test_converted_model_matches_numpy_same_padding_reference(byol_pickle):
    """The acceptance test of issue 6: converted PyTorch == independent numpy SAME forward (1e-4)."""
    _, data = byol_pickle
    sd = convert_checkpoint(data, "haiku_byol")
    model = convert_to_tf_same_padding_(build_backbone("resnet50", base_width=8))
    model.load_state_dict(sd, strict=True)
    x = _images(32)  # even sizes everywhere: every strided layer pads asymmetrically in TF
    es = data["experiment_state"]
    ref = numpy_haiku_resnet_forward(es["online_params"], es["online_state"], x)
    out = _forward(model, x)
    assert out.shape == ref.shape == (2, 256)
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-5)

    # The naive conversion (same weights, PyTorch's symmetric padding) is visibly wrong.
    naive = build_backbone("resnet50", base_width=8)
    naive.load_state_dict(sd, strict=True)
    assert np.abs(_forward(naive, x) - ref).max() > 100 * 1e-4 * max(1.0, np.abs(ref).max())


def test_target_params_are_selectable(byol_pickle):
    _, data = byol_pickle
    online = convert_checkpoint(data, "haiku_byol", params="online")
    target = convert_checkpoint(data, "haiku_byol", params="target")
    assert online.keys() == target.keys()
    assert not torch.equal(online["conv1.weight"], target["conv1.weight"])
    model = convert_to_tf_same_padding_(build_backbone("resnet50", base_width=8))
    model.load_state_dict(target, strict=True)
    es = data["experiment_state"]
    x = _images(32)
    np.testing.assert_allclose(_forward(model, x), numpy_haiku_resnet_forward(es["target_params"], es["target_state"], x),
                               atol=1e-4, rtol=1e-5)


def test_layout_mapping_and_optional_classifier(byol_pickle):
    _, data = byol_pickle
    es = data["experiment_state"]
    sd = convert_checkpoint(data, "haiku_byol", include_classifier=True)
    w = es["online_params"]["res_net50/~/block_group_1/~/block_0/~/conv_1"]["w"]  # HWIO
    assert torch.equal(sd["layer2.0.conv2.weight"], torch.from_numpy(w).permute(3, 2, 0, 1))
    bn = es["online_params"]["res_net50/~/block_group_0/~/block_0/~/shortcut_batchnorm"]
    assert torch.equal(sd["layer1.0.downsample.1.weight"], torch.from_numpy(bn["scale"]).reshape(-1))
    var = es["online_state"]["res_net50/~/initial_batchnorm_1/~/var_ema"]["average"]
    assert torch.equal(sd["bn1.running_var"], torch.from_numpy(var).reshape(-1))
    assert sd["fc.weight"].shape == (10, 256)
    assert not any(k.startswith(("projector", "predictor")) for k in sd)


def test_odd_input_sizes_pad_symmetrically_so_both_paddings_agree(byol_pickle):
    _, data = byol_pickle
    sd = convert_checkpoint(data, "haiku_byol")
    same = convert_to_tf_same_padding_(build_backbone("resnet50", base_width=8))
    naive = build_backbone("resnet50", base_width=8)
    same.load_state_dict(sd)
    naive.load_state_dict(sd)
    x = _images(33)  # 33 -> 17 -> 9 -> 5 -> 3 -> 2: TF pads (k-1)/2 on both sides at each stride-2 layer
    np.testing.assert_allclose(_forward(same, x), _forward(naive, x), atol=1e-5)


@pytest.mark.parametrize("size,k,s,expected", [(224, 7, 2, (2, 3)), (112, 3, 2, (0, 1)), (56, 3, 2, (0, 1)),
                                               (57, 3, 2, (1, 1)), (56, 1, 2, (0, 0)), (56, 3, 1, (1, 1))])
def test_tf_same_pad_values(size, k, s, expected):
    """TF SAME pads ``max((ceil(n/s) - 1) s + k - n, 0)``, the odd pixel after: the converted conv
    equals a VALID conv on that explicit padding."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(2, 3, k, stride=s, padding=k // 2)
    same = convert_to_tf_same_padding_(torch.nn.Sequential(conv))[0]
    x = torch.randn(1, 2, size, size)
    before, after = expected
    ref = F.conv2d(F.pad(x, (before, after, before, after)), conv.weight, conv.bias, stride=s)
    torch.testing.assert_close(same(x), ref)


def test_same_layers_equal_explicit_asymmetric_padding():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=True)
    same = convert_to_tf_same_padding_(torch.nn.Sequential(conv))[0]
    assert isinstance(same, Conv2dSame) and same.weight is conv.weight
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(same(x), F.conv2d(F.pad(x, (0, 1, 0, 1)), conv.weight, conv.bias, stride=2))
    pool = convert_to_tf_same_padding_(torch.nn.Sequential(torch.nn.MaxPool2d(3, 2, 1)))[0]
    assert isinstance(pool, MaxPool2dSame)
    x = -torch.rand(1, 2, 8, 8) - 1  # all negative: zero padding would win the max, -inf must not
    torch.testing.assert_close(pool(x), F.max_pool2d(F.pad(x, (0, 1, 0, 1), value=float("-inf")), 3, 2))
    assert pool(x).max() < 0


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"experiment_state": _Evil(marker)}, protocol=2)
    with pytest.raises(UnsafePickleError, match=r"refusing to load global '(posix|os|nt)\.system'"):
        safe_load_pickle(payload)
    assert not marker.exists()
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        safe_load_pickle(b"cbuiltins\neval\n(S'1+1'\ntR.")
    with pytest.raises(UnsafePickleError, match="latin-1"):  # bytes codecs other than latin-1
        safe_load_pickle(b"c_codecs\nencode\n(S'x'\nS'zlib_codec'\ntR.")


def test_pickle_size_limit(byol_pickle):
    raw, _ = byol_pickle
    with pytest.raises(ValueError, match="exceeds the limit"):
        safe_load_pickle(raw, max_bytes=1000)


@pytest.mark.parametrize("haiku,torch_name", [
    ("initial_conv", "conv1"), ("initial_conv_1", "conv1"), ("initial_batchnorm", "bn1"),
    ("block_group_3/~/block_2/~/batchnorm_2", "layer4.2.bn3"),
    ("block_group_0/~/block_0/~/shortcut_conv", "layer1.0.downsample.0"),
])
def test_haiku_module_names(haiku, torch_name):
    from ssl_zoo.model_zoo.convert.haiku_byol import _torch_module_name

    assert _torch_module_name(haiku) == torch_name


def test_unknown_haiku_module_is_an_error():
    data = {"experiment_state": {"online_params": {"res_net50/~/mystery": {"w": np.zeros((1, 1, 1, 1))}},
                                 "online_state": {}}}
    with pytest.raises(KeyError, match="unrecognised Haiku ResNet module 'mystery'"):
        convert_checkpoint(data, "haiku_byol")
