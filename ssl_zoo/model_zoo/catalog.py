"""The model-zoo catalog (``model_zoo/catalog.yaml``) and its Markdown table.

One :class:`CatalogEntry` per checkpoint: how to fetch it (URLs, published checksums, size
limit), how to convert it (source format + converter options) and how to run it (ResNet
name, width, padding convention), plus its license and published metrics with protocol.
The catalog file is ``$SSL_ZOO_CATALOG`` if set, else ``model_zoo/catalog.yaml`` of the
repository (installed: ``ssl_zoo/zoo_catalog/catalog.yaml``, see
:mod:`ssl_zoo.utils.resources`). ``{base_url}`` in a URL is replaced by ``$SSL_ZOO_BASE_URL``.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import logging
import os
from typing import Any, Dict, List, Optional

import yaml
from iopath.common.file_io import PathHandler

from ssl_zoo.model_zoo.download import PathManager, download
from ssl_zoo.utils.resources import catalog_file

logger = logging.getLogger(__name__)

CATALOG_ENV = "SSL_ZOO_CATALOG"


@dataclasses.dataclass(frozen=True)
class CatalogEntry:
    """One checkpoint of the zoo (fields as in ``catalog.yaml``)."""

    name: str
    method: str
    arch: str
    format: str
    urls: List[str]
    description: str = ""
    width: int = 1
    base_width: int = 64
    cifar_stem: bool = False
    epochs: Optional[int] = None
    sha256: Optional[str] = None
    sha256_prefix: Optional[str] = None
    md5_prefix: Optional[str] = None
    size: Optional[str] = None
    size_bytes: Optional[int] = None
    license: Optional[str] = None
    convert: Dict[str, Any] = dataclasses.field(default_factory=dict)
    padding: str = "torch"  # "torch" (symmetric) or "tf_same" (TF / Haiku 'SAME')
    input_size: int = 224  # side of the square input the checkpoint was trained / evaluated at
    mean: List[float] = dataclasses.field(default_factory=lambda: [0.485, 0.456, 0.406])  # RGB normalisation
    std: List[float] = dataclasses.field(default_factory=lambda: [0.229, 0.224, 0.225])
    metrics: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    notes: str = ""

    @property
    def verification(self) -> str:
        """How a download of this entry is checked: sha256 / sha256-prefix / md5-prefix / unverified."""
        if self.sha256:
            return "sha256"
        if self.sha256_prefix:
            return "sha256-prefix"
        if self.md5_prefix:
            return "md5-prefix"
        return "unverified"

    def resolved_urls(self, base_url: Optional[str] = None) -> List[str]:
        """URLs with ``{base_url}`` filled from the argument or ``$SSL_ZOO_BASE_URL``.

        Raises:
            RuntimeError: an URL needs ``{base_url}`` and none is configured.
        """
        base = base_url if base_url is not None else os.environ.get(base_url_env(), "")
        out = []
        for url in self.urls:
            if "{base_url}" in url:
                if not base:
                    raise RuntimeError(f"'{self.name}' is hosted under this project's base URL: set "
                                       f"${base_url_env()} (e.g. https://host/ssl_zoo or file:///mirror)")
                url = url.replace("{base_url}", base.rstrip("/"))
            out.append(url)
        return out

    @property
    def headline_metric(self) -> str:
        m = self.metrics[0] if self.metrics else None
        return f"{m['value']} ({m['task']})" if m else "-"


def catalog_path() -> str:
    return os.path.abspath(os.environ.get(CATALOG_ENV) or catalog_file())


@functools.lru_cache(maxsize=4)
def _read(path: str, mtime: float) -> Dict[str, Any]:
    with open(path) as f:
        return yaml.safe_load(f)


def _raw() -> Dict[str, Any]:
    path = catalog_path()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model-zoo catalog not found at {path} (set ${CATALOG_ENV})")
    return _read(path, os.path.getmtime(path))


def base_url_env() -> str:
    try:
        return _raw().get("base_url_env", "SSL_ZOO_BASE_URL")
    except FileNotFoundError:
        return "SSL_ZOO_BASE_URL"


def load_catalog() -> Dict[str, CatalogEntry]:
    """All entries, by name, in file order."""
    fields = {f.name for f in dataclasses.fields(CatalogEntry)}
    out = {}
    for name, raw in (_raw().get("entries") or {}).items():
        unknown = set(raw) - fields
        if unknown:
            raise ValueError(f"catalog entry '{name}' has unknown fields {sorted(unknown)}")
        out[name] = CatalogEntry(name=name, **{k: v for k, v in raw.items() if v is not None})
    return out


def not_listed() -> List[Dict[str, str]]:
    """Releases deliberately left out of the catalog, with the reason."""
    return list(_raw().get("not_listed") or [])


def get_entry(name: str) -> CatalogEntry:
    """The entry called ``name``; an unknown name lists the known ones."""
    entries = load_catalog()
    if name not in entries:
        close = difflib.get_close_matches(name, list(entries), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise KeyError(f"No model-zoo entry '{name}'.{hint} Known: {', '.join(entries)}")
    return entries[name]


def download_entry(name: str, *, progress: bool = True, offline: Optional[bool] = None) -> str:
    """Download (or find in the cache) the source file of entry ``name``; tries each URL in turn.

    An entry without a checksum is downloaded only if its complete length is known (catalog
    ``size_bytes`` or the server's Content-Length), with a warning that its contents are unverified.
    """
    entry = get_entry(name)
    errors: List[BaseException] = []
    max_bytes = int(entry.size_bytes) + 1 if entry.size_bytes else None
    if entry.verification == "unverified":
        logger.warning(f"model-zoo entry '{name}' has no published checksum: its download is checked for "
                       f"completeness only.")
    for url in entry.resolved_urls():
        try:
            return download(url, sha256=entry.sha256, sha256_prefix=entry.sha256_prefix,
                            md5_prefix=entry.md5_prefix, progress=progress, offline=offline, max_bytes=max_bytes,
                            expected_bytes=entry.size_bytes)
        except OSError as e:  # includes OfflineCacheMiss; try the next mirror. Checksum errors propagate.
            errors.append(e)
    if len(errors) == 1:
        raise errors[0]
    raise OSError(f"could not fetch '{name}':\n  " + "\n  ".join(map(str, errors)))


class ModelZooHandler(PathHandler):
    """iopath handler: ``sslzoo://<catalog name>`` -> the entry's downloaded source file."""

    PREFIX = "sslzoo://"

    def _get_supported_prefixes(self) -> List[str]:
        return [self.PREFIX]

    def _get_local_path(self, path: str, force: bool = False, **kwargs: Any) -> str:
        return download_entry(path[len(self.PREFIX):], progress=kwargs.get("progress", True))

    def _open(self, path: str, mode: str = "r", buffering: int = -1, **kwargs: Any):
        return open(self._get_local_path(path), mode, buffering=buffering)


# Beside the catalog it reads, so that download.py does not import the catalog (no cycle).
PathManager.register_handler(ModelZooHandler())


def _fmt(v: Any) -> str:
    return "-" if v is None or v == "" else str(v)


def render_markdown(entries: Optional[Dict[str, CatalogEntry]] = None) -> str:
    """The ``MODEL_ZOO.md`` page: one table row per entry, then notes and omissions."""
    entries = load_catalog() if entries is None else entries
    lines = [
        "# ssl_zoo model zoo",
        "",
        "Generated from `model_zoo/catalog.yaml` by `python tools/model_zoo.py list --markdown`; do not edit by hand.",
        "",
        "Use: `ssl_zoo.model_zoo.get(name)` returns the backbone with weights loaded "
        "(`torch.hub.load(<repo>, name, pretrained=True)` the same through `hubconf.py`); "
        "`ssl-zoo-model-zoo download|convert|export` on the command line. Feed it images of the entry's "
        "input size normalised with its mean / std (`ssl_zoo.model_zoo.get_entry(name).input_size`, `.mean`, `.std`).",
        "",
        "Licenses: ssl_zoo's code is Apache-2.0 (`LICENSE`). The weights are not: each checkpoint keeps the "
        "license of its publisher, given in the license column (e.g. DeepMind's BYOL weights are CC-BY-NC-4.0, "
        "non-commercial). Check it before you ship a model built on one.",
        "",
        "Checksum column: `sha256` = full published sha256; `sha256-prefix` = the 8-hex sha256 prefix in the "
        "file name (torchvision); `md5-prefix` = the md5 prefix published in the upstream README; "
        "`unverified` = no published checksum (the download logs the sha256 it computed).",
        "",
        "| name | method | arch | input | epochs | metric | protocol / source | format | padding | size | checksum "
        "| license |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in entries.values():
        arch = f"{e.arch} {e.width}x" + (f" (base {e.base_width})" if e.base_width != 64 else "")
        m = e.metrics[0] if e.metrics else {}
        proto = f"{m.get('protocol', '')}; {m.get('source', '')}" if m else "-"
        stats = "ImageNet mean/std" if list(e.mean) == [0.485, 0.456, 0.406] else f"mean {e.mean}, std {e.std}"
        lines.append(f"| `{e.name}` | {e.method} | {arch} | {e.input_size} px, {stats} | {_fmt(e.epochs)} | {_fmt(m.get('value'))} "
                     f"| {proto} | {e.format} | {e.padding} | {_fmt(e.size)} | {e.verification} | {_fmt(e.license)} |")
    lines += ["", "## Sources", ""]
    for e in entries.values():
        note = f" {e.notes}" if e.notes else ""
        lines.append(f"- `{e.name}`: {e.description}. URL: {', '.join(e.urls)}.{note}")
    omitted = not_listed() if entries else []
    if omitted:
        lines += ["", "## Not listed", ""]
        lines += [f"- **{o['name']}**: {' '.join(str(o['reason']).split())}" for o in omitted]
    return "\n".join(lines) + "\n"


__all__ = ["CatalogEntry", "ModelZooHandler", "catalog_path", "download_entry", "get_entry", "load_catalog", "not_listed",
           "render_markdown"]
