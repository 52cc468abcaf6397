"""TorchScript / ONNX export of a whole backbone (TF-SAME padding included)."""
import pytest
import torch

from ssl_zoo.cli.model_zoo import main as zoo_main
from ssl_zoo.model_zoo.export_graph import export_onnx, export_torchscript, onnx_available
from ssl_zoo.modeling.backbones import build_backbone
from ssl_zoo.modeling.backbones.tf_same_padding import convert_to_tf_same_padding_


def test_torchscript_file_reproduces_the_backbone_with_tf_same_padding(tmp_path):
    torch.manual_seed(0)
    model = convert_to_tf_same_padding_(build_backbone("resnet10", base_width=4)).eval()
    path = export_torchscript(model, str(tmp_path / "r10.ts"), input_size=33)  # odd size: SAME padding matters
    loaded = torch.jit.load(path)
    x = torch.randn(3, 3, 33, 33)  # another batch size than traced
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=1e-5, atol=1e-5)


def test_cli_exports_a_weights_file_to_torchscript(tmp_path, capsys):
    torch.manual_seed(1)
    model = build_backbone("resnet18").eval()
    weights = tmp_path / "r18.pth"
    torch.save(model.state_dict(), weights)
    zoo_main(["export", str(weights), str(tmp_path / "r18.ts"), "--to", "torchscript", "--arch", "resnet18",
              "--input-size", "32"])
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(str(tmp_path / "r18.ts"))(x), model(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(SystemExit) as info:  # a weights file needs the architecture
        zoo_main(["export", str(weights), str(tmp_path / "x.ts"), "--to", "torchscript"])
    assert str(info.value.code).startswith("error: --to torchscript of a weights file needs --arch")


@pytest.mark.skipif(onnx_available(), reason="checks the message shown when the onnx package is missing")
def test_onnx_without_the_onnx_package_is_one_clear_error(tmp_path):
    with pytest.raises(ModuleNotFoundError, match="pip install onnx"):
        export_onnx(build_backbone("resnet10", base_width=4), str(tmp_path / "m.onnx"), input_size=32)
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.skipif(not onnx_available(), reason="torch.onnx.export needs the 'onnx' package, not installed here "
                                                 "(pip install onnx); the missing-package error is tested instead")
def test_onnx_export_writes_a_valid_graph(tmp_path):
    import onnx

    path = export_onnx(build_backbone("resnet10", base_width=4), str(tmp_path / "m.onnx"), input_size=32)
    graph = onnx.load(path)
    onnx.checker.check_model(graph)
    assert [i.name for i in graph.graph.input] == ["images"] and [o.name for o in graph.graph.output] == ["features"]
