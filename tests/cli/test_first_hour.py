"""A new user's first hour (issue 14), end to end, in a temporary directory.

Builds the wheel from a copy of the source tree, installs it (``--no-deps``) into a fresh venv
whose dependencies come from this interpreter's site-packages, then, through the console
scripts and from a directory that is not the checkout:

1. ``ssl_zoo.__version__``, a packaged config by name, ``model_zoo.list_models()`` on the
   packaged catalog, ``build_method`` after a plain ``import`` (methods found by entry point);
2. pretraining on a flat folder (with an unreadable file and a text file) and on a nested
   folder through ``ssl-zoo-train``, flags after the overrides, then ``--resume`` at the end of
   the line; log lines, found / skipped counts and ``metrics.jsonl`` checked;
3. ``ssl-zoo-embed`` of the folder: one row per readable image;
4. ``ssl-zoo-model-zoo convert`` of the trained checkpoint, served from a local zoo mirror on
   127.0.0.1, loaded through ``torch.hub.load(..., source="local", pretrained=True)`` and
   compared tensor by tensor with the converted file.
"""
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap

import numpy as np
import pytest
from PIL import Image

from model_zoo_fixtures import LocalServer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCES = ("setup.py", "ssl_zoo", "methods", "configs", "model_zoo", "hubconf.py", "LICENSE", "README.md")
TINY = ["SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "4", "MODEL.BACKBONE.BASE_WIDTH", "4", "SOLVER.AMP.ENABLED",
        "False", "DATASETS.KNN_TRAIN", "", "DATASETS.KNN_TEST", "", "DATASETS.CORRUPT_POLICY", "skip", "LOG.PERIOD", "1",
        "DEVICE", "cpu", "LOG.TENSORBOARD", "False", "SOLVER.WARMUP_ITERS", "1", "MODEL.CHANNELS_LAST", "False"]


def _images(folder, names, seed=0):
    rng = np.random.default_rng(seed)
    for name in names:
        path = os.path.join(folder, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (36, 40, 3), dtype=np.uint8)).save(path)


def _site_dirs():
    """This interpreter's site-packages directories (torch and the other dependencies live there)."""
    dirs = [p for p in sys.path if p.rstrip(os.sep).endswith(("site-packages", "dist-packages")) and os.path.isdir(p)]
    return list(dict.fromkeys(dirs + [sysconfig.get_paths()["purelib"]]))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv bin dir, work dir, source copy) with the wheel installed."""
    root = tmp_path_factory.mktemp("first_hour")
    src = root / "src"
    src.mkdir()
    for name in SOURCES:
        path = os.path.join(REPO, name)
        if os.path.isdir(path):
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        elif os.path.isfile(path):
            shutil.copy(path, src / name)
    env = _env()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(root / "wheels"), str(src)], check=True, env=env, cwd=str(root), capture_output=True)
    wheel = next((root / "wheels").glob("ssl_zoo-*.whl"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    py = venv / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    with open(os.path.join(purelib, "zz_deps.pth"), "w") as f:  # dependencies from this environment
        f.write("\n".join(_site_dirs()) + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(wheel)],
                   check=True, env=env, cwd=str(root), capture_output=True)
    work = root / "work"
    work.mkdir()
    return venv / "bin", work, src


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SSL_ZOO_CATALOG", "SSL_ZOO_BASE_URL")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONNOUSERSITE="1", **extra)
    return env


def _run(bin_dir, work, *cmd, **env):
    proc = subprocess.run([str(bin_dir / cmd[0]), *cmd[1:]], cwd=str(work), env=_env(**env), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"{cmd}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def test_installed_package_has_configs_catalog_methods_and_version(installed):
    bin_dir, work, _ = installed
    out = _run(bin_dir, work, "python", "-c", textwrap.dedent("""
        import ssl_zoo, ssl_zoo.model_zoo as zoo
        from ssl_zoo.config import load_config
        from ssl_zoo.modeling.method import build_method
        cfg = load_config("byol/quickstart.yaml", ["MODEL.BACKBONE.BASE_WIDTH", "4"])
        model = build_method(cfg)
        print(ssl_zoo.__version__, ssl_zoo.__file__, type(model).__name__, len(zoo.list_models()))
    """))
    version, where, method, n_models = out.split()[-4:]
    assert version == open(os.path.join(REPO, "ssl_zoo", "__init__.py")).read().split('__version__ = "')[1].split('"')[0]
    assert "venv" in where and not where.startswith(REPO), where  # the installed copy, not the checkout
    assert method == "BYOL" and int(n_models) > 0
    assert "byol_r50_1x_1000ep" in _run(bin_dir, work, "ssl-zoo-model-zoo", "list")


def test_pretrain_on_flat_and_nested_folders_embed_resume_and_hub_load(installed):
    bin_dir, work, src = installed
    _images(str(work / "flat"), [f"img{i}.png" for i in range(6)])
    (work / "flat" / "broken.jpg").write_bytes(b"not a jpeg")
    (work / "flat" / "notes.txt").write_text("not an image either")
    _images(str(work / "nested"), ["top.png", "2021/06/a.png", "2021/06/b.jpg", "2022/c.png", "x/y/z/d.png"], seed=1)

    for folder, found, used in (("flat", 7, 6), ("nested", 5, 5)):
        out = _run(bin_dir, work, "ssl-zoo-train", "--config-file", "byol/quickstart.yaml", "DATASETS.TRAIN", folder,
                   "OUTPUT_DIR", f"out/{folder}", *TINY, "--overwrite")
        assert f"Training data {folder}: {found} images found, {used} used, {found - used} skipped as unreadable; " \
               f"no labels (UnlabeledFolderDataset)" in out
        assert "Model: " in out and "GFLOPs" in out
        assert "iter 2/2  loss " in out and "img/s" in out and "data " in out and "eta" in out and "peak_mem" in out
        with open(work / "out" / folder / "metrics.jsonl") as f:
            rows = [json.loads(line) for line in f]
        assert [r["iteration"] for r in rows if "loss" in r] == [1, 2]

    # README habit: flags after the KEY VALUE overrides, --resume last
    out = _run(bin_dir, work, "ssl-zoo-train", "--config-file", "byol/quickstart.yaml", "DATASETS.TRAIN", "flat",
               *TINY, "SOLVER.MAX_ITER", "3", "OUTPUT_DIR", "out/flat", "--resume")
    assert "starting at 2" in out and "iter 3/3" in out

    out = _run(bin_dir, work, "ssl-zoo-embed", "flat", "--weights", "out/flat/model_final.pth", "--output",
               "out/emb.npy", "--no-progress")
    emb = np.load(work / "out" / "emb.npy")
    with open(work / "out" / "emb.csv") as f:
        rows = list(csv.DictReader(f))
    assert emb.shape == (6, 32) and np.isfinite(emb).all()  # ResNet-10 at base width 4: 32-d features
    assert [r["path"] for r in rows] == [f"img{i}.png" for i in range(6)]
    assert "embedded 6 images (1 skipped as unreadable)" in out

    # 4. the trained backbone published on a zoo mirror (127.0.0.1) and loaded through torch.hub
    _hub_load_from_local_mirror(bin_dir, work, src, "out/flat/model_final.pth")


def _hub_load_from_local_mirror(bin_dir, work, src, checkpoint):
    _run(bin_dir, work, "ssl-zoo-model-zoo", "convert", checkpoint, "mirror/tiny.safetensors")
    data = (work / "mirror" / "tiny.safetensors").read_bytes()
    catalog = work / "my_catalog.yaml"
    catalog.write_text(textwrap.dedent(f"""
        version: 1
        base_url_env: SSL_ZOO_BASE_URL
        entries:
          my_tiny_byol:
            description: a BYOL ResNet-10 pretrained for 3 steps on six images
            method: BYOL
            arch: resnet10
            base_width: 4
            cifar_stem: true
            input_size: 32
            mean: [0.4914, 0.4822, 0.4465]
            std: [0.2470, 0.2435, 0.2616]
            format: ssl_zoo
            license: Apache-2.0
            sha256: {hashlib.sha256(data).hexdigest()}
            urls: ["{{base_url}}/byol/tiny.safetensors"]
    """))
    script = textwrap.dedent(f"""
        import torch
        from safetensors.torch import load_file
        model = torch.hub.load({str(src)!r}, "my_tiny_byol", source="local", pretrained=True, trust_repo=True)
        entry = torch.hub.load({str(src)!r}, "catalog_entry", "my_tiny_byol", source="local", trust_repo=True)
        ref = load_file("mirror/tiny.safetensors")
        state = model.state_dict()
        assert set(ref) <= set(state), sorted(set(ref) ^ set(state))[:5]
        for k, v in ref.items():
            assert torch.equal(state[k], v), k
        y = model.eval()(torch.randn(2, 3, entry.input_size, entry.input_size))
        print("hub ok", len(ref), tuple(y.shape))
    """)
    with LocalServer({"/byol/tiny.safetensors": data}) as server:
        out = _run(bin_dir, work, "python", "-c", script, SSL_ZOO_CATALOG=str(catalog), SSL_ZOO_BASE_URL=server.url,
                   SSL_ZOO_CACHE=str(work / "cache"))
    assert "hub ok" in out and "(2, 32)" in out
    assert [r["path"] for r in server.requests] == ["/byol/tiny.safetensors"]
