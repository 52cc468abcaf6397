"""Converters of PyTorch-based upstream formats (round trips) and the exporters."""
import collections
import os

import pytest
import torch
from model_zoo_fixtures import resnet_state_dict

from ssl_zoo.model_zoo import convert_file, export_safetensors, export_timm, export_torchvision
from ssl_zoo.model_zoo.convert import detect_format, load_checkpoint
from ssl_zoo.model_zoo.convert.torch_formats import UnsafeCheckpointError
from ssl_zoo.model_zoo.export import read_safetensors_metadata

_TV_SEQ = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}


@pytest.fixture(scope="module")
def backbone():
    return resnet_state_dict(seed=0)  # tiny ResNet-18 (base width 8), torchvision names


def _noise_like(sd, seed):
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.randn(v.shape, generator=g) if v.is_floating_point() else v.clone()) for k, v in sd.items()}


def _upstream(fmt, sd, other):
    """Wrap ``sd`` (the part to recover) and ``other`` (a decoy) in format ``fmt``'s layout."""
    if fmt == "moco":  # facebookresearch/moco main_moco.py save_checkpoint
        state = collections.OrderedDict()
        for k, v in sd.items():
            state[f"module.encoder_q.{k}"] = v
        for k, v in other.items():
            state[f"module.encoder_k.{k}"] = v
        state["module.encoder_q.fc.0.weight"] = torch.randn(16, 64)
        state["module.queue"] = torch.randn(128, 16)
        state["module.queue_ptr"] = torch.zeros(1, dtype=torch.long)
        return {"epoch": 200, "arch": "resnet50", "state_dict": state, "optimizer": {"state": {}, "param_groups": []}}
    if fmt == "lightly":  # Lightning module with backbone = Sequential(*resnet.children()[:-1])
        state = {}
        for prefix, part in (("backbone.", sd), ("backbone_momentum.", other)):
            for k, v in part.items():
                head, _, rest = k.partition(".")
                state[f"{prefix}{_TV_SEQ[head]}.{rest}"] = v
        state["projection_head.layer.0.weight"] = torch.randn(4, 4)
        return {"epoch": 10, "global_step": 100, "state_dict": state, "pytorch-lightning_version": "2.1.0"}
    if fmt == "solo_learn":
        state = {f"backbone.{k}": v for k, v in sd.items()}
        state.update({f"momentum_backbone.{k}": v for k, v in other.items()})
        state["projector.0.weight"] = torch.randn(4, 4)
        state["classifier.weight"] = torch.randn(10, 64)
        return {"epoch": 1, "state_dict": state}
    if fmt == "vissl":
        trunk = {f"_feature_blocks.{k}": v for k, v in sd.items()}
        heads = {"0.clf.0.weight": torch.randn(4, 4)}
        return {"phase_idx": 1, "classy_state_dict": {"base_model": {"model": {"trunk": trunk, "heads": heads}}}}
    if fmt in ("torchvision", "timm"):
        return {**sd, "fc.weight": torch.randn(10, 64), "fc.bias": torch.randn(10)}
    if fmt == "ssl_zoo":  # our Checkpointer: {"model": BYOL state dict, ...}
        model = {f"backbone.{k}": v for k, v in sd.items()}
        model.update({f"target_backbone.{k}": v for k, v in other.items()})
        model["projector.net.0.weight"] = torch.randn(4, 4)
        return {"model": model, "iteration": 10}
    raise ValueError(fmt)


@pytest.mark.parametrize("fmt", ["moco", "lightly", "solo_learn", "vissl", "torchvision", "timm", "ssl_zoo"])
def test_round_trip(fmt, backbone, tmp_path):
    other = _noise_like(backbone, 1)
    path = str(tmp_path / f"{fmt}.pth")
    torch.save(_upstream(fmt, backbone, other), path)
    if fmt != "timm":  # timm files look exactly like torchvision ones
        assert detect_format(load_checkpoint(path, fmt)) == fmt
    out = convert_file(path, fmt)
    assert out.keys() == backbone.keys()
    for k in backbone:
        assert torch.equal(out[k], backbone[k]), k
    # the auto-detected format gives the same result
    if fmt != "timm":
        auto = convert_file(path, "auto")
        assert all(torch.equal(auto[k], backbone[k]) for k in backbone)


@pytest.mark.parametrize("fmt,option", [("moco", {"encoder": "k"}), ("lightly", {"momentum": True}),
                                        ("solo_learn", {"momentum": True}), ("ssl_zoo", {"target": True})])
def test_momentum_encoder_selectable(fmt, option, backbone, tmp_path):
    other = _noise_like(backbone, 1)
    path = str(tmp_path / f"{fmt}.pth")
    torch.save(_upstream(fmt, backbone, other), path)
    out = convert_file(path, fmt, **option)
    assert all(torch.equal(out[k], other[k]) for k in backbone)


def test_converted_weights_load_into_backbone(backbone, tmp_path):
    from ssl_zoo.modeling.backbones import build_backbone

    path = str(tmp_path / "moco.pth.tar")
    torch.save(_upstream("moco", backbone, backbone), path)
    model = build_backbone("resnet18", base_width=8)
    assert not model.load_state_dict(convert_file(path, "moco"), strict=True).missing_keys


def test_malicious_torch_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = str(tmp_path / "evil.pth")
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "payload": Evil()}, path)
    with pytest.raises(UnsafeCheckpointError, match="needs full unpickling"):
        convert_file(path, "moco")
    assert not marker.exists()


def test_wrong_format_is_a_clear_error(backbone, tmp_path):
    path = str(tmp_path / "tv.pth")
    torch.save(_upstream("torchvision", backbone, backbone), path)
    with pytest.raises(KeyError, match="format 'moco'"):
        convert_file(path, "moco")


def test_export_torchvision_timm_safetensors(tmp_path):
    import timm
    import torchvision

    sd = resnet_state_dict(seed=2, base_width=64)  # width 1, base 64 = torchvision / timm resnet18
    tv_path = export_torchvision(sd, str(tmp_path / "r18_tv.pth"), arch="resnet18")
    tv = torchvision.models.resnet18()
    result = tv.load_state_dict(torch.load(tv_path, weights_only=True), strict=False)
    assert result.missing_keys == ["fc.weight", "fc.bias"] and not result.unexpected_keys
    assert torch.equal(tv.layer3[1].bn2.running_var, sd["layer3.1.bn2.running_var"])

    timm_path = export_timm(sd, str(tmp_path / "r18_timm.safetensors"), arch="resnet18", padding="tf_same")
    tm = timm.create_model("resnet18", pretrained=False, num_classes=0,
                           pretrained_cfg_overlay=dict(file=timm_path))
    from safetensors.torch import load_file

    tm.load_state_dict(load_file(timm_path), strict=True)
    assert torch.equal(tm.layer4[0].downsample[0].weight, sd["layer4.0.downsample.0.weight"])
    assert read_safetensors_metadata(timm_path)["padding"] == "tf_same"

    st = export_safetensors(sd, str(tmp_path / "r18.safetensors"), metadata={"arch": "resnet18"})
    back = convert_file(st, "ssl_zoo")
    assert all(torch.equal(back[k], sd[k]) for k in sd)

    with pytest.raises(ValueError, match="not a torchvision resnet18"):  # a width-multiplied / tiny net
        export_torchvision(resnet_state_dict(seed=0), str(tmp_path / "bad.pth"), arch="resnet18")
