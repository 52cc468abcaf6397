"""Fixtures shared by the model-zoo and download tests (a helper module, not a test file).

- :class:`LocalServer`: ``http.server`` on 127.0.0.1 in a thread, serving in-memory files with
  ``Range`` support, a request log, a "drop the connection after N bytes once" switch, and
  ``custom`` handlers per path (misbehaving servers of the fault-injection tests).
- :func:`make_haiku_byol_pickle`: a BYOL checkpoint with DeepMind's naming and pickle layout
  (dill's namedtuple-by-value, Haiku ``frozendict``, a by-reference NamedTuple for the optimizer
  state), random weights, written without haiku / dill / jax installed.
- :func:`numpy_haiku_resnet_forward`: an independent NHWC numpy forward of the Haiku ResNet v1
  with TF "SAME" padding, reading the Haiku parameter dicts directly.
"""
from __future__ import annotations

import collections
import contextlib
import http.server
import math
import pickle
import sys
import threading
import types
from typing import Dict, List

import numpy as np

# ----------------------------------------------------------------------------- HTTP server


class LocalServer:
    """Serve ``files`` (path -> bytes) on 127.0.0.1 with Range requests; use as a context manager."""

    def __init__(self, files: Dict[str, bytes]) -> None:
        self.files = dict(files)
        self.requests: List[dict] = []
        self.drop_after: Dict[str, int] = {}  # path -> bytes to send before dropping (once)
        self.custom: Dict[str, object] = {}  # path -> fn(handler) answering the request itself
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                server.requests.append({"path": self.path, "range": rng})
                if self.path in server.custom:
                    server.custom[self.path](self)
                    return
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start, status = 0, 200
                if rng and rng.startswith("bytes="):
                    start = int(rng[len("bytes="):].split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    status = 206
                body = data[start:]
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                cut = server.drop_after.pop(self.path, None)
                if cut is not None:  # simulate a dropped connection mid-transfer
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "LocalServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ----------------------------------------------------------------------------- Haiku fixture


def haiku_resnet50_params(rng: np.random.Generator, base: int = 8, prefix: str = "res_net50",
                          blocks=(3, 4, 6, 3)):
    """(params, state) of a Haiku BYOL ResNet-50 v1 with stem width ``base`` (64 in the paper)."""
    params, state = {}, {}

    def conv(name, k, cin, cout):
        params[name] = {"w": rng.normal(0, math.sqrt(2.0 / (k * k * cin)), (k, k, cin, cout)).astype(np.float32)}

    def bn(name, c, small=False):
        scale = rng.uniform(0.2, 0.5, (1, 1, 1, c)) if small else rng.uniform(0.8, 1.2, (1, 1, 1, c))
        params[name] = {"scale": scale.astype(np.float32), "offset": rng.normal(0, 0.1, (1, 1, 1, c)).astype(np.float32)}
        mean = rng.normal(0, 0.2, (1, 1, 1, c)).astype(np.float32)
        var = rng.uniform(0.5, 1.5, (1, 1, 1, c)).astype(np.float32)
        state[f"{name}/~/mean_ema"] = {"counter": np.int32(100), "hidden": mean, "average": mean.copy()}
        state[f"{name}/~/var_ema"] = {"counter": np.int32(100), "hidden": var, "average": var.copy()}

    # The released files name the stem "initial_conv_1" / "initial_batchnorm_1".
    conv(f"{prefix}/~/initial_conv_1", 7, 3, base)
    bn(f"{prefix}/~/initial_batchnorm_1", base)
    cin = base
    for g, n in enumerate(blocks):
        cout = base * 4 * 2**g
        for b in range(n):
            p = f"{prefix}/~/block_group_{g}/~/block_{b}/~/"
            if b == 0:
                conv(p + "shortcut_conv", 1, cin, cout)
                bn(p + "shortcut_batchnorm", cout)
            conv(p + "conv_0", 1, cin, cout // 4)
            bn(p + "batchnorm_0", cout // 4)
            conv(p + "conv_1", 3, cout // 4, cout // 4)
            bn(p + "batchnorm_1", cout // 4)
            conv(p + "conv_2", 1, cout // 4, cout)
            bn(p + "batchnorm_2", cout, small=True)
            cin = cout
    # Heads BYOL trains alongside (skipped by the converter unless asked).
    for head, din in (("projector", cin), ("predictor", 16)):
        params[f"{head}/~/linear"] = {"w": rng.normal(size=(din, 32)).astype(np.float32), "b": np.zeros(32, np.float32)}
        params[f"{head}/~/batch_norm"] = {"scale": np.ones((1, 32), np.float32), "offset": np.zeros((1, 32), np.float32)}
        params[f"{head}/~/linear_1"] = {"w": rng.normal(size=(32, 16)).astype(np.float32)}
        state[f"{head}/~/batch_norm/~/mean_ema"] = {"counter": np.int32(1), "hidden": np.zeros((1, 32), np.float32),
                                                     "average": np.zeros((1, 32), np.float32)}
    params["classifier"] = {"w": rng.normal(size=(cin, 10)).astype(np.float32), "b": rng.normal(size=10).astype(np.float32)}
    return params, state


@contextlib.contextmanager
def _fake_upstream_modules():
    """Install stand-ins for dill / haiku / byol in sys.modules so pickle can name them."""
    names = ["dill", "dill._dill", "haiku", "haiku._src", "haiku._src.data_structures", "byol",
             "byol.byol_experiment", "byol.utils", "byol.utils.optimizers"]
    saved = {n: sys.modules.get(n) for n in names}
    mods = {n: types.ModuleType(n) for n in names}

    class frozendict(dict):  # Haiku's (2020) immutable params container
        def __reduce__(self):
            return (frozendict, (dict(self),))

    frozendict.__module__, frozendict.__qualname__ = "haiku._src.data_structures", "frozendict"
    mods["haiku._src.data_structures"].frozendict = frozendict
    State = collections.namedtuple("_ByolExperimentState",
                                   ["online_params", "target_params", "online_state", "target_state", "opt_state"])
    State.__module__ = "byol.byol_experiment"
    mods["byol.byol_experiment"]._ByolExperimentState = State
    LarsState = collections.namedtuple("LarsState", ["trace"])
    LarsState.__module__ = "byol.utils.optimizers"
    mods["byol.utils.optimizers"].LarsState = LarsState

    def _create_namedtuple(name, fieldnames, modulename, defaults=None):  # dill's signature
        raise AssertionError("never called while pickling")

    _create_namedtuple.__module__, _create_namedtuple.__qualname__ = "dill._dill", "_create_namedtuple"
    mods["dill._dill"]._create_namedtuple = _create_namedtuple
    sys.modules.update(mods)
    try:
        yield types.SimpleNamespace(frozendict=frozendict, State=State, LarsState=LarsState,
                                    create_namedtuple=_create_namedtuple)
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def make_haiku_byol_pickle(seed: int = 0, base: int = 8) -> bytes:
    """Bytes of a BYOL ``pretrain.pkl`` look-alike; returns the pickle (protocol 2, like dill's dump)."""
    rng = np.random.default_rng(seed)
    online_p, online_s = haiku_resnet50_params(rng, base)
    target_p, target_s = haiku_resnet50_params(rng, base)
    with _fake_upstream_modules() as up:
        fd = lambda d: up.frozendict({k: up.frozendict(v) for k, v in d.items()})  # noqa: E731
        es = up.State(fd(online_p), fd(target_p), fd(online_s), fd(target_s),
                      up.LarsState(trace=fd({k: {"w": np.zeros(1, np.float32)} for k in list(online_p)[:2]})))

        class DillLikePickler(pickle.Pickler):
            def reducer_override(self, obj):  # dill pickles namedtuple classes by value
                if obj is up.State:
                    return (up.create_namedtuple, ("_ByolExperimentState", up.State._fields, "byol.byol_experiment"))
                return NotImplemented

        import io

        buf = io.BytesIO()
        DillLikePickler(buf, protocol=2).dump({"experiment_state": es, "step": np.int64(1000),
                                               "rng": np.array([0, 42], dtype=np.uint32)})
    return buf.getvalue()


# ----------------------------------------------------------------------------- numpy reference


def _tf_same(n: int, k: int, s: int):
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def _np_conv(x, w, stride):
    """x [N, H, W, Ci], w [kh, kw, Ci, Co], TF SAME."""
    kh, kw = w.shape[:2]
    (t, b), (l, r) = _tf_same(x.shape[1], kh, stride), _tf_same(x.shape[2], kw, stride)
    xp = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)))
    ho, wo = (xp.shape[1] - kh) // stride + 1, (xp.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], ho, wo, w.shape[3]))
    for i in range(kh):
        for j in range(kw):
            out += xp[:, i:i + stride * ho:stride, j:j + stride * wo:stride, :] @ w[i, j]
    return out


def _np_maxpool(x, k=3, s=2):
    (t, b), (l, r) = _tf_same(x.shape[1], k, s), _tf_same(x.shape[2], k, s)
    xp = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)), constant_values=-np.inf)
    ho, wo = (xp.shape[1] - k) // s + 1, (xp.shape[2] - k) // s + 1
    return np.max([xp[:, i:i + s * ho:s, j:j + s * wo:s, :] for i in range(k) for j in range(k)], axis=0)


def numpy_haiku_resnet_forward(params, state, images_nchw, prefix: str = "res_net50", blocks=(3, 4, 6, 3),
                               eps: float = 1e-5) -> np.ndarray:
    """Haiku ResNet v1 (BYOL's ``ResNetTorso``) at test time: ``[N, 3, H, W] -> [N, C]`` (float64)."""
    def bn(x, name):
        p, m, v = params[name], state[f"{name}/~/mean_ema"]["average"], state[f"{name}/~/var_ema"]["average"]
        return (x - m) / np.sqrt(v.astype(np.float64) + eps) * p["scale"] + p["offset"]

    relu = lambda x: np.maximum(x, 0)  # noqa: E731
    x = np.transpose(images_nchw.astype(np.float64), (0, 2, 3, 1))
    x = relu(bn(_np_conv(x, params[f"{prefix}/~/initial_conv_1"]["w"], 2), f"{prefix}/~/initial_batchnorm_1"))
    x = _np_maxpool(x)
    for g, n in enumerate(blocks):
        for b in range(n):
            p = f"{prefix}/~/block_group_{g}/~/block_{b}/~/"
            stride = 2 if (g > 0 and b == 0) else 1
            shortcut = x
            if b == 0:
                shortcut = bn(_np_conv(x, params[p + "shortcut_conv"]["w"], stride), p + "shortcut_batchnorm")
            y = relu(bn(_np_conv(x, params[p + "conv_0"]["w"], 1), p + "batchnorm_0"))
            y = relu(bn(_np_conv(y, params[p + "conv_1"]["w"], stride), p + "batchnorm_1"))  # stride on the 3x3
            y = bn(_np_conv(y, params[p + "conv_2"]["w"], 1), p + "batchnorm_2")
            x = relu(y + shortcut)
    return x.mean(axis=(1, 2))


def resnet_state_dict(seed: int = 0, name: str = "resnet18", base_width: int = 8, **kw) -> Dict[str, "object"]:
    """State dict of a small ssl_zoo ResNet with randomised BN statistics (torchvision names)."""
    import torch

    from ssl_zoo.modeling.backbones import build_backbone

    torch.manual_seed(seed)
    model = build_backbone(name, base_width=base_width, **kw)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
    return {k: v.clone() for k, v in model.state_dict().items()}

