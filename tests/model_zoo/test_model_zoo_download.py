"""Verified downloads from a local HTTP server, the catalog, ``model_zoo.get`` and the CLI."""
import hashlib
import io
import os

import numpy as np
import pytest
import torch
from model_zoo_fixtures import (
    LocalServer,
    make_haiku_byol_pickle,
    numpy_haiku_resnet_forward,
    resnet_state_dict,
)

import ssl_zoo.model_zoo as zoo
from ssl_zoo.model_zoo.convert import safe_load_pickle
from ssl_zoo.model_zoo.download import (
    ChecksumMismatchError,
    DownloadError,
    OfflineCacheMiss,
    PathManager,
    cached_path,
    download,
)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BLOB = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
SHA = hashlib.sha256(BLOB).hexdigest()


def _safetensors_bytes(sd):
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in sd.items()})


def _moco_bytes(sd):
    buf = io.BytesIO()
    torch.save({"epoch": 200, "state_dict": {f"module.encoder_q.{k}": v for k, v in sd.items()}}, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def assets():
    tiny = resnet_state_dict(seed=3)  # resnet18, base width 8
    haiku = make_haiku_byol_pickle(seed=5, base=8)
    files = {"/blob.bin": BLOB, "/flaky.bin": BLOB, "/own/tiny.safetensors": _safetensors_bytes(tiny),
             "/moco/tiny_moco.pth.tar": _moco_bytes(tiny), "/byol/pretrain_tiny.pkl": haiku}
    with LocalServer(files) as server:
        yield server, tiny, haiku


@pytest.fixture
def env(tmp_path, monkeypatch, assets):
    """Empty cache, online, and a catalog of fixture entries served by the local server."""
    server, tiny, haiku = assets
    monkeypatch.setenv("SSL_ZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SSL_ZOO_OFFLINE", raising=False)
    monkeypatch.setenv("SSL_ZOO_BASE_URL", server.url + "/own")
    md5 = hashlib.md5(server.files["/moco/tiny_moco.pth.tar"]).hexdigest()
    own_sha = hashlib.sha256(server.files["/own/tiny.safetensors"]).hexdigest()
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(f"""
version: 1
base_url_env: SSL_ZOO_BASE_URL
entries:
  tiny_own:
    method: BYOL
    arch: resnet18
    base_width: 8
    format: ssl_zoo
    urls: ["{{base_url}}/tiny.safetensors"]
    sha256: {own_sha}
  tiny_moco:
    method: MoCo v2
    arch: resnet18
    base_width: 8
    format: moco
    convert: {{encoder: q}}
    urls: ["{server.url}/moco/missing.pth.tar", "{server.url}/moco/tiny_moco.pth.tar"]
    md5_prefix: {md5[:8]}
  tiny_byol:
    method: BYOL
    arch: resnet50
    base_width: 8
    format: haiku_byol
    convert: {{params: online}}
    padding: tf_same
    urls: ["{server.url}/byol/pretrain_tiny.pkl"]
    metrics: [{{task: imagenet_linear_top1, value: 1.0, protocol: fixture, source: test}}]
""")
    monkeypatch.setenv("SSL_ZOO_CATALOG", str(catalog))
    server.requests.clear()
    return server


def test_download_then_cache_hit(env):
    url = env.url + "/blob.bin"
    path = download(url, sha256=SHA, progress=False)
    assert open(path, "rb").read() == BLOB and path == cached_path(url)
    n = len(env.requests)
    assert download(url, sha256=SHA, progress=False) == path  # cache hit: no new request
    assert len(env.requests) == n
    assert PathManager.get_local_path(url) == path  # through iopath's PathManager, still cached
    assert len(env.requests) == n


def test_resume_after_interrupted_transfer(env):
    url = env.url + "/flaky.bin"
    env.drop_after["/flaky.bin"] = 120_000
    with pytest.raises(DownloadError, match="interrupted"):
        download(url, sha256=SHA, progress=False)
    part = cached_path(url) + ".part"
    assert os.path.getsize(part) == 120_000 and not os.path.exists(cached_path(url))
    path = download(url, sha256=SHA, progress=False)
    assert open(path, "rb").read() == BLOB
    assert env.requests[-1]["range"] == "bytes=120000-"  # only the missing bytes were fetched
    assert not os.path.exists(part)


def test_sha256_mismatch_is_rejected(env):
    url = env.url + "/blob.bin"
    with pytest.raises(ChecksumMismatchError, match="sha256"):
        download(url, sha256="0" * 64, progress=False)
    assert not os.path.exists(cached_path(url)) and not os.path.exists(cached_path(url) + ".part")
    with pytest.raises(ChecksumMismatchError, match="md5"):
        download(url, md5_prefix="00000000", progress=False)
    download(url, sha256_prefix=SHA[:8], progress=False)  # the right prefix passes


def test_offline_mode(env, monkeypatch):
    monkeypatch.setenv("SSL_ZOO_OFFLINE", "1")
    url = env.url + "/blob.bin"
    with pytest.raises(OfflineCacheMiss, match="not in the cache"):
        download(url, progress=False)
    assert env.requests == []  # the network was not touched
    with pytest.raises(OfflineCacheMiss):
        zoo.get("tiny_own")
    monkeypatch.delenv("SSL_ZOO_OFFLINE")
    download(url, progress=False)
    monkeypatch.setenv("SSL_ZOO_OFFLINE", "1")
    assert open(download(url, progress=False), "rb").read() == BLOB  # cached files work offline


def test_refused_urls_and_size_limit(env, tmp_path):
    for bad in ("ftp://example.com/x.pth", "gs://bucket/x.pkl", "data:,hello"):
        with pytest.raises(ValueError, match="only http, https, file"):
            download(bad, progress=False)
    with pytest.raises(DownloadError, match="over the limit"):
        download(env.url + "/blob.bin", max_bytes=1000, progress=False)
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(env.url + "/nope.bin", progress=False)
    local = tmp_path / "local.bin"
    local.write_bytes(BLOB)
    assert download(local.as_uri(), sha256=SHA) == str(local)  # file:// is verified in place


def test_get_own_entry_with_base_url(env, assets):
    _, tiny, _ = assets
    model = zoo.get("tiny_own", progress=False)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in tiny.items())
    assert zoo.get("tiny_own", pretrained=False).out_dim == model.out_dim


def test_get_moco_entry_falls_back_to_second_url_and_checks_md5(env, assets):
    _, tiny, _ = assets
    model = zoo.get("tiny_moco", progress=False)
    assert torch.equal(model.conv1.weight, tiny["conv1.weight"])
    assert [r["path"] for r in env.requests][:2] == ["/moco/missing.pth.tar", "/moco/tiny_moco.pth.tar"]
    assert PathManager.get_local_path("sslzoo://tiny_moco").endswith("tiny_moco.pth.tar")


def test_get_byol_entry_end_to_end_matches_numpy_reference(env, assets):
    _, _, haiku = assets
    model = zoo.get("tiny_byol", progress=False).eval()
    assert getattr(model, "tf_same_padding", False)
    x = np.random.default_rng(2).normal(size=(2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        out = model(torch.from_numpy(x)).double().numpy()
    es = safe_load_pickle(haiku)["experiment_state"]
    np.testing.assert_allclose(out, numpy_haiku_resnet_forward(es["online_params"], es["online_state"], x),
                               atol=1e-4, rtol=1e-5)
    # the second call reuses the cached conversion
    converted = os.listdir(os.path.join(os.environ["SSL_ZOO_CACHE"], "converted"))
    assert any(name.startswith("tiny_byol-") for name in converted)
    assert torch.equal(zoo.get("tiny_byol", progress=False).conv1.weight, model.conv1.weight)


def test_unconfigured_base_url_is_a_clear_error(env, monkeypatch):
    monkeypatch.delenv("SSL_ZOO_BASE_URL")
    with pytest.raises(RuntimeError, match="SSL_ZOO_BASE_URL"):
        zoo.get("tiny_own")


def test_real_catalog_is_consistent(monkeypatch):
    monkeypatch.delenv("SSL_ZOO_CATALOG", raising=False)
    entries = zoo.load_catalog()
    for name in ("byol_r50_1x_1000ep", "byol_r200_2x", "byol_r50_1x_300ep_baseline",
                 "moco_v1_r50_200ep", "moco_v2_r50_200ep", "moco_v2_r50_800ep"):
        assert name in entries
    for e in entries.values():
        assert e.format in zoo.CONVERTER_REGISTRY and e.padding in ("torch", "tf_same")
        assert e.urls and all(u.startswith(("https://", "{base_url}/")) for u in e.urls)
        assert e.sha256 is None or len(e.sha256) == 64
    assert entries["byol_r50_1x_1000ep"].padding == "tf_same"
    md = zoo.render_markdown(entries)
    assert "| `moco_v2_r50_800ep` |" in md and "SimCLR" in md
    with open(os.path.join(REPO_ROOT, "model_zoo", "MODEL_ZOO.md")) as f:
        assert f.read() == md, "MODEL_ZOO.md is stale: python tools/model_zoo.py list --markdown > model_zoo/MODEL_ZOO.md"


def _load_tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location("ssl_zoo_tool_model_zoo", os.path.join(REPO_ROOT, "tools", "model_zoo.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_list_and_convert(env, tmp_path, assets, capsys):
    _, tiny, _ = assets
    tool = _load_tool()
    tool.main(["list"])
    out = capsys.readouterr().out
    assert "tiny_byol" in out and "md5-prefix" in out
    target = tmp_path / "moco_backbone.safetensors"
    tool.main(["convert", "tiny_moco", str(target), "--quiet"])
    back = zoo.convert_file(str(target), "ssl_zoo")
    assert all(torch.equal(back[k], tiny[k]) for k in tiny)
    exported = tmp_path / "moco_tv.pth"
    tool.main(["export", str(target), str(exported), "--to", "torchvision"])
    assert torch.equal(torch.load(exported, weights_only=True)["conv1.weight"], tiny["conv1.weight"])


def test_cli_list_prints_the_real_catalog(monkeypatch, capsys):
    monkeypatch.delenv("SSL_ZOO_CATALOG", raising=False)
    _load_tool().main(["list"])
    out = capsys.readouterr().out
    assert "byol_r50_1x_1000ep" in out and "moco_v2_r50_800ep" in out and "entries from" in out
