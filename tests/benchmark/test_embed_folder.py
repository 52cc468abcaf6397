"""``ssl-zoo-embed`` / ``ssl_zoo.benchmark.embed``: features of every image of a folder, in the CSV's
order, equal to the backbone applied by hand to the same evaluation transform."""
import csv
import os

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from torch import nn

from ssl_zoo.benchmark.embed import embed_folder, write_embeddings
from ssl_zoo.cli.embed import main as embed_main


class _MeanColour(nn.Module):
    """A 'backbone' whose features are computable by hand: the per-channel mean of the input."""

    def forward(self, x):
        return x.mean(dim=(2, 3))


def _make(folder, n, size=(10, 8)):
    rng = np.random.default_rng(0)
    arrays = {}
    for i in range(n):
        sub = "" if i % 2 else os.path.join("a", "b")
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
        arr = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
        path = os.path.join(folder, sub, f"img{i}.png")
        Image.fromarray(arr).save(path)
        arrays[os.path.relpath(path, folder)] = arr
    return arrays


@pytest.mark.parametrize("ext", [".safetensors", ".npy"])
def test_features_match_a_hand_computation_and_rows_follow_the_csv(tmp_path, ext):
    arrays = _make(str(tmp_path / "imgs"), 5, size=(8, 8))
    (tmp_path / "imgs" / "bad.jpg").write_bytes(b"x")
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    # image_size 8 and resize 8: the eval transform is exactly ToTensor + Normalize
    result = embed_folder(_MeanColour(), str(tmp_path / "imgs"), image_size=8, resize=8, mean=mean, std=std,
                          device=torch.device("cpu"), batch_size=2, progress=False)
    assert result.skipped == [str(tmp_path / "imgs" / "bad.jpg")]
    out = write_embeddings(result, str(tmp_path / "out" / f"emb{ext}"), str(tmp_path / "imgs"))
    emb = load_file(out[0])["embeddings"].numpy() if ext == ".safetensors" else np.load(out[0])
    with open(out[1]) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["index"]) for r in rows] == list(range(5)) and sorted(r["path"] for r in rows) == sorted(arrays)
    for r in rows:
        expected = (arrays[r["path"]].reshape(-1, 3).mean(0) / 255.0 - np.array(mean)) / np.array(std)
        np.testing.assert_allclose(emb[int(r["index"])], expected, rtol=1e-5, atol=1e-5)


def test_cli_with_a_config_and_random_weights(tmp_path, capsys):
    _make(str(tmp_path / "imgs"), 3)
    out = tmp_path / "emb.npy"
    embed_main([str(tmp_path / "imgs"), "--weights", "random", "--output", str(out), "--config-file",
                "byol/quickstart.yaml", "DEVICE", "cpu", "--no-progress", "MODEL.BACKBONE.BASE_WIDTH", "4"])
    assert np.load(out).shape == (3, 32)  # ResNet-10 at base width 4: 8 x base width features
    assert "embedded 3 images (0 skipped as unreadable)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:  # no config beside a bare file: one error line
        embed_main([str(tmp_path / "imgs"), "--weights", str(out), "--output", str(tmp_path / "e.npy")])
    assert str(info.value.code).startswith("error: --weights") and "--config-file" in str(info.value.code)
    with pytest.raises(SystemExit) as info:
        embed_main([str(tmp_path / "imgs"), "--weights", "random", "--config-file", "byol/quickstart.yaml",
                    "--output", str(tmp_path / "e.pt")])
    assert "must end with .safetensors or .npy" in str(info.value.code)
