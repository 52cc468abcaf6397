"""Bad image folders (issue 13 item 7): a symlink loop inside a class folder must not multiply
the class, a file linked twice counts once, and an empty class folder is a clear error instead
of silently shifting every later label. Both folder readers: in-memory and file-backed."""
import os

import numpy as np
import pytest
from PIL import Image

from ssl_zoo.data.datasets import load_image_folder_in_memory
from ssl_zoo.data.datasets import ImageFolderDataset


def _folder(root, counts):
    rng = np.random.default_rng(0)
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    return root


def test_symlink_loop_and_double_links_count_each_image_once(tmp_path, monkeypatch):
    monkeypatch.setenv("SSL_ZOO_CACHE", str(tmp_path / "cache"))
    root = _folder(tmp_path / "imgs", {"cat": 3, "dog": 2})
    os.symlink(root / "cat", root / "cat" / "loop")  # cat/loop/loop/loop/... -> cat
    os.symlink(root / "dog" / "0.png", root / "dog" / "same_as_0.png")
    with pytest.warns(UserWarning, match="counted once"):
        mem = load_image_folder_in_memory(str(root))
    assert mem.targets.tolist() == [0, 0, 0, 1, 1]  # was 3 x ~40 cats before the fix
    with pytest.warns(UserWarning, match="counted once"):
        files = ImageFolderDataset(str(root))
    assert sorted(files.targets) == [0, 0, 0, 1, 1]


def test_empty_class_folder_is_an_error_not_a_label_shift(tmp_path, monkeypatch):
    monkeypatch.setenv("SSL_ZOO_CACHE", str(tmp_path / "cache"))
    root = _folder(tmp_path / "imgs", {"ant": 2, "bee": 0, "cow": 2})
    with pytest.raises(FileNotFoundError, match="class folder '.*bee' holds no images"):
        load_image_folder_in_memory(str(root))
    with pytest.raises(FileNotFoundError, match="bee"):
        ImageFolderDataset(str(root))  # torchvision refuses as well: both readers agree
