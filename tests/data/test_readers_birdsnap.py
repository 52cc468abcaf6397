"""Birdsnap reader on a fixture of the v1.1 release (tab-separated lists) with missing images."""
import os

import pytest
from PIL import Image

from ssl_zoo.data.readers.birdsnap import read_birdsnap


def test_lists_split_by_test_images_and_missing_are_counted(tmp_path):
    root = tmp_path / "birdsnap"
    root.mkdir()
    (root / "species.txt").write_text("id\tcommon\tscientific\tdir\n2\tBlue Jay\tCyanocitta cristata\tBlue_Jay\n"
                                      "1\tAcadian Flycatcher\tEmpidonax virescens\tAcadian_Flycatcher\n")
    header = "url\tmd5\tpath\tspecies_id\tbb_x1\tbb_y1\tbb_x2\tbb_y2\n"
    rows = [("Acadian_Flycatcher/a.jpg", 1), ("Acadian_Flycatcher/b.jpg", 1), ("Blue_Jay/c.jpg", 2),
            ("Blue_Jay/dead_link.jpg", 2), ("Blue_Jay/d.jpg", 2)]
    (root / "images.txt").write_text(header + "".join(f"http://x/{p}\tmd5\t{p}\t{s}\t1\t2\t3\t4\n" for p, s in rows))
    (root / "test_images.txt").write_text("path\nAcadian_Flycatcher/b.jpg\nBlue_Jay/d.jpg\n")
    for p, _ in rows:
        if "dead" not in p:
            os.makedirs(root / "download" / "images" / os.path.dirname(p), exist_ok=True)
            Image.new("RGB", (8, 8)).save(root / "download" / "images" / p)
    rec = read_birdsnap(str(root))
    assert rec.classes == ["Acadian Flycatcher", "Blue Jay"]
    assert rec.splits["train"] == [("download/images/Acadian_Flycatcher/a.jpg", 0), ("download/images/Blue_Jay/c.jpg", 1)]
    assert rec.splits["test"] == [("download/images/Acadian_Flycatcher/b.jpg", 0), ("download/images/Blue_Jay/d.jpg", 1)]
    assert rec.missing == ["Blue_Jay/dead_link.jpg"]


def test_missing_lists(tmp_path):
    with pytest.raises(FileNotFoundError, match="get_birdsnap.py"):
        read_birdsnap(str(tmp_path))
