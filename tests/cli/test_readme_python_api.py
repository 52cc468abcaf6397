"""The README's "Python API" examples run as written (paths and budget made tiny here)."""
import os
import re

import numpy as np
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _python_blocks(section: str):
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


def _folder(tmp_path):
    rng = np.random.default_rng(0)
    for i, sub in enumerate(["", "", "a", "a/b", "c", "", "a", "c"]):
        os.makedirs(tmp_path / "imgs" / sub, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 36, 3), dtype=np.uint8)).save(tmp_path / "imgs" / sub / f"{i}.png")
    return str(tmp_path / "imgs")


def test_train_from_python_and_byol_from_parts(tmp_path):
    train, loop = _python_blocks("Python API")
    folder = _folder(tmp_path)
    tiny = ('"SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "4", "MODEL.BACKBONE.BASE_WIDTH", "4", "DEVICE", "cpu", '
            '"DATASETS.KNN_TRAIN", "", "DATASETS.KNN_TEST", "", "LOG.TENSORBOARD", "False", "SOLVER.AMP.ENABLED", "False"')
    assert '"SOLVER.EPOCHS", "10"' in train and "/path/to/images" in train
    train = train.replace('"SOLVER.EPOCHS", "10"', tiny).replace("/path/to/images", folder)
    train = train.replace('"out/api"', repr(str(tmp_path / "api")))
    exec(compile(train, "README.md: train from Python", "exec"), {})
    assert os.path.isfile(tmp_path / "api" / "model_final.pth")

    assert "max_steps, step = 100, 0" in loop and "batch_size=64" in loop
    loop = loop.replace("/path/to/images", folder).replace("max_steps, step = 100, 0", "max_steps, step = 3, 0")
    loop = loop.replace("batch_size=64", "batch_size=4")
    scope = {}
    exec(compile(loop, "README.md: BYOL from parts", "exec"), scope)
    model = scope["model"]
    assert scope["step"] == 3
    # the EMA ran: the target differs from the online network after 3 steps (tau < 1)
    online = dict(model.backbone.named_parameters())
    assert any(not (p == online[n]).all() for n, p in model.target_backbone.named_parameters())
