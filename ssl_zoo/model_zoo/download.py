"""Verified, resumable, cached downloads, exposed through an iopath ``PathManager``.

- Cache: ``$SSL_ZOO_CACHE`` (default ``~/.cache/ssl_zoo``); a URL is stored as
  ``<cache>/downloads/<16 hex of sha256(url)>/<file name>``, so two URLs never collide.
- Resume: bytes arrive in ``<file>.part``; a later call asks for the rest with an HTTP
  ``Range`` header and appends if the server answers 206 (starts over on 200).
- Integrity: sha256 (or the published prefix of one, or an md5 prefix as MoCo's README gives)
  is checked before the file is renamed into place; a mismatch deletes it and raises
  :class:`ChecksumMismatchError`. The verified sha256 is kept beside the file
  (``<file>.sha256``) so cache hits of multi-GB files are not re-hashed.
- Offline: ``$SSL_ZOO_OFFLINE=1`` (or ``offline=True``) never touches the network and raises
  :class:`OfflineCacheMiss` naming the URL and cache path when a file is not cached.
- Safety: only ``http``, ``https`` and ``file`` URLs (redirects too); a size limit
  (``max_bytes``, default ``$SSL_ZOO_MAX_DOWNLOAD_BYTES`` or 16 GiB) enforced on the
  announced and on the received length.
- Completeness: a download is accepted only if it can be told complete: the server's
  ``Content-Length`` (or chunked framing, whose truncation ``http.client`` detects), a
  known ``expected_bytes``, or a checksum. A close-delimited body of unknown length with no
  checksum is refused (a connection closing early would look like a complete file).
- Nothing hangs: a socket ``timeout`` per read (a stalled server) and an overall
  ``deadline_s`` (``$SSL_ZOO_DOWNLOAD_DEADLINE_S``, default 6 h); exceeding the deadline or
  the size limit deletes the ``.part`` file (an interrupted transfer keeps it for resume).
- Concurrency: one ``fcntl`` lock per cached file (``<file>.lock``): a second process
  downloading the same file (e.g. every rank of ``benchmark.py --num-gpus 2``) waits for
  the first and then uses its verified file.

``PathManager`` (iopath) routes ``http(s)://`` through this module (and, once
``ssl_zoo.model_zoo.catalog`` is imported, ``sslzoo://<catalog name>`` to the entry's file)::

    >>> from ssl_zoo.model_zoo import PathManager
    >>> local = PathManager.get_local_path("sslzoo://byol_r50_1x_1000ep")
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import logging
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Iterator, List, Optional

from iopath.common.file_io import PathHandler
from iopath.common.file_io import PathManager as _PathManager

from ssl_zoo.utils.file_io import CACHE_ENV, atomic_write, cache_dir, file_digest  # noqa: F401  (re-exported)

logger = logging.getLogger(__name__)

OFFLINE_ENV, MAX_BYTES_ENV = "SSL_ZOO_OFFLINE", "SSL_ZOO_MAX_DOWNLOAD_BYTES"
DEADLINE_ENV = "SSL_ZOO_DOWNLOAD_DEADLINE_S"
DEFAULT_MAX_BYTES = 16 * 2**30
DEFAULT_DEADLINE_S = 6 * 3600.0  # the largest zoo file (~4.6 GB) at a slow 1 MB/s takes ~80 min
ALLOWED_SCHEMES = ("http", "https", "file")
_CHUNK = 1 << 20


class DownloadError(OSError):
    """The transfer failed or was refused (scheme, size limit, HTTP error)."""


class ChecksumMismatchError(ValueError):
    """The downloaded bytes do not have the expected hash (the file was deleted)."""


class OfflineCacheMiss(FileNotFoundError):
    """Offline mode and the file is not in the cache."""


def is_offline() -> bool:
    """Whether ``$SSL_ZOO_OFFLINE`` is set to a true value (1, true, yes, on)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def max_download_bytes() -> int:
    return int(os.environ.get(MAX_BYTES_ENV) or DEFAULT_MAX_BYTES)


def download_deadline_s() -> float:
    return float(os.environ.get(DEADLINE_ENV) or DEFAULT_DEADLINE_S)


@contextlib.contextmanager
def file_lock(path: str, timeout: float) -> Iterator[None]:
    """Exclusive ``fcntl.flock`` on ``path`` (created), waiting at most ``timeout`` seconds.

    The kernel drops the lock when its holder dies, so a killed download never blocks the next.

    Raises:
        DownloadError: still held by another process after ``timeout``.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        end = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > end:
                    raise DownloadError(f"another process has been downloading into {path[:-len('.lock')]} "
                                        f"for over {timeout:g} s; giving up") from None
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)  # releases the lock


def check_url(url: str) -> urllib.parse.ParseResult:
    """Parse ``url``; anything but http / https / file raises ``ValueError``."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise ValueError(f"refusing URL '{url}': only {', '.join(ALLOWED_SCHEMES)} URLs are allowed")
    return parsed


def cached_path(url: str, filename: Optional[str] = None, root: Optional[str] = None) -> str:
    """Where ``url`` is (or would be) cached."""
    name = filename or os.path.basename(urllib.parse.urlparse(url).path) or "download"
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    return os.path.join(root or cache_dir(), "downloads", key, name)


def verify_file(path: str, *, sha256: Optional[str] = None, sha256_prefix: Optional[str] = None,
                md5_prefix: Optional[str] = None) -> str:
    """Check the hashes that are given; return the file's sha256. Raises ChecksumMismatchError."""
    actual = file_digest(path, "sha256")
    problems = []
    if sha256 and actual != sha256.lower():
        problems.append(f"sha256 {actual} != expected {sha256}")
    if sha256_prefix and not actual.startswith(sha256_prefix.lower()):
        problems.append(f"sha256 {actual} does not start with {sha256_prefix}")
    if md5_prefix:
        md5 = file_digest(path, "md5")
        if not md5.startswith(md5_prefix.lower()):
            problems.append(f"md5 {md5} does not start with {md5_prefix}")
    if problems:
        raise ChecksumMismatchError(f"{path}: " + "; ".join(problems))
    return actual


class _SafeRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) only (urllib alone would also follow ftp://)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlparse(newurl).scheme not in ("http", "https"):
            raise DownloadError(f"refusing redirect from {req.full_url} to '{newurl}'")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_SafeRedirects)


def _fetch_http(url: str, part: str, *, max_bytes: int, progress: bool, timeout: float, deadline: float,
                verified: bool, expected_bytes: Optional[int] = None) -> None:
    """Download ``url`` into ``part``, resuming from its current length when possible.

    Args:
        deadline: ``time.monotonic()`` value by which the transfer must be done.
        verified: a checksum will be checked afterwards (then a body of unknown length is fine).
        expected_bytes: the complete size if known (catalog ``size_bytes``).
    """
    try:
        _fetch_http_once(url, part, max_bytes=max_bytes, progress=progress, timeout=timeout, deadline=deadline,
                         verified=verified, expected_bytes=expected_bytes)
    except _Abandon as e:  # deadline / size cap / unknown length: a partial file is of no use
        if os.path.exists(part):
            os.remove(part)
        raise DownloadError(str(e)) from None


class _Abandon(Exception):
    """A transfer whose partial file must not be kept."""


def _fetch_http_once(url: str, part: str, *, max_bytes: int, progress: bool, timeout: float, deadline: float,
                     verified: bool, expected_bytes: Optional[int]) -> None:
    start = os.path.getsize(part) if os.path.exists(part) else 0
    req = urllib.request.Request(url, headers={"User-Agent": "ssl_zoo-model-zoo"})
    if start:
        req.add_header("Range", f"bytes={start}-")
    try:
        resp = _OPENER.open(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start:  # "range not satisfiable": stale partial file, start again
            os.remove(part)
            return _fetch_http_once(url, part, max_bytes=max_bytes, progress=progress, timeout=timeout,
                                    deadline=deadline, verified=verified, expected_bytes=expected_bytes)
        raise DownloadError(f"HTTP {e.code} for {url}: {e.reason}") from None
    except urllib.error.URLError as e:
        raise DownloadError(f"cannot reach {url}: {e.reason}") from None
    with resp:
        resumed = start and resp.status == 206 and resp.headers.get("Content-Range", "").startswith(f"bytes {start}-")
        if start and not resumed:
            logger.info(f"{url}: server ignored the Range request; downloading from the start")
            start = 0
        length = resp.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        chunked = "chunked" in resp.headers.get("Transfer-Encoding", "").lower()
        if total is not None and total > max_bytes:
            raise _Abandon(f"{url} is {total} bytes, over the limit of {max_bytes} (set {MAX_BYTES_ENV})")
        if expected_bytes and total is not None and total != expected_bytes:
            raise _Abandon(f"{url}: the server announces {total} bytes but the catalog says {expected_bytes}")
        if total is None and not chunked and not verified and not expected_bytes:
            raise _Abandon(f"{url}: the server sent no Content-Length and there is no checksum or known size, so "
                           "a truncated transfer could not be told from a complete one; refusing it")
        from tqdm import tqdm

        with open(part, "ab" if start else "wb") as f, tqdm(
            total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
            desc=os.path.basename(part)[: -len(".part")], disable=not progress, leave=False,
        ) as bar:
            received = start
            while True:
                try:
                    chunk = resp.read1(_CHUNK)  # what has arrived: a stall keeps the bytes before it
                except http.client.IncompleteRead as e:  # connection closed early: keep what came
                    f.write(e.partial[: max(0, max_bytes - received)])
                    raise DownloadError(f"{url}: transfer interrupted at {received + len(e.partial)} bytes; "
                                        "call again to resume") from None
                except OSError as e:  # reset / timeout mid-transfer: the .part file stays for resume
                    raise DownloadError(f"{url}: transfer interrupted at {received} bytes ({e}); "
                                        "call again to resume") from None
                if not chunk:
                    break
                received += len(chunk)
                if received > max_bytes or (total is not None and received > total):
                    raise _Abandon(f"{url}: more than {min(max_bytes, total or max_bytes)} bytes received "
                                   f"(size limit {MAX_BYTES_ENV} / Content-Length); the partial file was deleted")
                if time.monotonic() > deadline:
                    raise _Abandon(f"{url}: not complete at the deadline ({received} bytes so far; set "
                                   f"{DEADLINE_ENV}); the partial file was deleted")
                f.write(chunk)
                bar.update(len(chunk))
        if total is not None and received != total:
            raise DownloadError(f"{url}: transfer interrupted at {received} of {total} bytes; "
                                "call again to resume")
        if expected_bytes and received != expected_bytes:
            raise _Abandon(f"{url}: received {received} bytes, the catalog says {expected_bytes}")


def download(url: str, *, sha256: Optional[str] = None, sha256_prefix: Optional[str] = None,
             md5_prefix: Optional[str] = None, filename: Optional[str] = None, root: Optional[str] = None,
             progress: bool = True, offline: Optional[bool] = None, max_bytes: Optional[int] = None,
             timeout: float = 60.0, deadline_s: Optional[float] = None, expected_bytes: Optional[int] = None) -> str:
    """Return a local path holding the bytes of ``url``, downloading into the cache if needed.

    Args:
        url: ``http(s)://...`` or ``file://...`` (file URLs are verified, not copied).
        sha256 / sha256_prefix / md5_prefix: expected hashes (any subset; none = unverified,
            logged with the computed sha256 so it can be recorded).
        filename: cached file name (default: the URL's last path component).
        root: cache root (default :func:`cache_dir`).
        progress: show a tqdm progress bar.
        offline: never use the network (default ``$SSL_ZOO_OFFLINE``).
        max_bytes: size limit (default ``$SSL_ZOO_MAX_DOWNLOAD_BYTES`` or 16 GiB).
        timeout: socket timeout in seconds (a stalled server fails after this long).
        deadline_s: overall limit of the transfer (default ``$SSL_ZOO_DOWNLOAD_DEADLINE_S`` or 6 h);
            also how long to wait for another process downloading the same file.
        expected_bytes: the complete size if known (e.g. the catalog's ``size_bytes``).

    Raises:
        ValueError: disallowed URL scheme. OfflineCacheMiss: offline and not cached.
        DownloadError: HTTP / network failure or size limit. ChecksumMismatchError: bad hash.
    """
    parsed = check_url(url)
    hashes = dict(sha256=sha256, sha256_prefix=sha256_prefix, md5_prefix=md5_prefix)
    if parsed.scheme == "file":
        path = urllib.request.url2pathname(parsed.path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{url}: no such file")
        if any(hashes.values()):
            verify_file(path, **hashes)
        return path
    dest = cached_path(url, filename, root)
    if os.path.isfile(dest):
        _verify_cached(dest, **hashes)
        return dest
    if is_offline() if offline is None else offline:
        raise OfflineCacheMiss(f"offline mode ({OFFLINE_ENV}) and {url} is not in the cache (expected at {dest}); "
                               f"download it on a connected machine and copy the cache ({CACHE_ENV}).")
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    deadline_s = download_deadline_s() if deadline_s is None else float(deadline_s)
    with file_lock(dest + ".lock", timeout=deadline_s + 2 * timeout):
        if os.path.isfile(dest):  # another process finished it while we waited
            _verify_cached(dest, **hashes)
            return dest
        part = dest + ".part"
        _fetch_http(url, part, max_bytes=max_download_bytes() if max_bytes is None else max_bytes,
                    progress=progress, timeout=timeout, deadline=time.monotonic() + deadline_s,
                    verified=any(hashes.values()), expected_bytes=expected_bytes)
        try:
            actual = verify_file(part, **hashes)
        except ChecksumMismatchError as e:
            os.remove(part)
            raise ChecksumMismatchError(f"download of {url} rejected ({e}); the file was deleted") from None
        if not any(hashes.values()):
            logger.warning(f"{url} has no published checksum: downloaded file sha256 = {actual} (complete by its "
                           f"length, contents unverified)")
        _record_sha256(dest, actual)
        os.replace(part, dest)
    return dest


def _record_sha256(dest: str, digest: str) -> None:
    data = (digest + "\n").encode()
    atomic_write(dest + ".sha256", lambda f: f.write(data))


def _verify_cached(dest: str, **hashes: Optional[str]) -> None:
    """Check a cached file against the hashes, using the recorded sha256 when available."""
    if not any(hashes.values()):
        return
    recorded = None
    if os.path.isfile(dest + ".sha256") and not hashes.get("md5_prefix"):
        with open(dest + ".sha256") as f:
            recorded = f.read().strip()
    if recorded:
        exp, pre = hashes.get("sha256"), hashes.get("sha256_prefix")
        if (exp and recorded != exp.lower()) or (pre and not recorded.startswith(pre.lower())):
            raise ChecksumMismatchError(f"cached {dest} has sha256 {recorded}, expected {exp or pre + '...'}; "
                                        "delete it to download again")
        return
    actual = verify_file(dest, **hashes)
    _record_sha256(dest, actual)


class VerifiedHTTPHandler(PathHandler):
    """iopath handler: ``http(s)://`` URLs through :func:`download` (cache, resume, limits)."""

    def _get_supported_prefixes(self) -> List[str]:
        return ["http://", "https://"]

    def _get_local_path(self, path: str, force: bool = False, **kwargs: Any) -> str:
        self._check_kwargs({k: v for k, v in kwargs.items() if k not in ("sha256", "progress")})
        return download(path, sha256=kwargs.get("sha256"), progress=kwargs.get("progress", True))

    def _open(self, path: str, mode: str = "r", buffering: int = -1, **kwargs: Any):
        if "w" in mode or "a" in mode:
            raise ValueError(f"{path}: remote files are read-only")
        return open(self._get_local_path(path), mode, buffering=buffering)

    def _exists(self, path: str, **kwargs: Any) -> bool:
        return os.path.isfile(cached_path(path))

    def _isfile(self, path: str, **kwargs: Any) -> bool:
        return self._exists(path)


PathManager = _PathManager()
PathManager.register_handler(VerifiedHTTPHandler())


def copy_to_cache(src: str, url: str, root: Optional[str] = None) -> str:
    """Put a file obtained elsewhere into the cache slot of ``url`` (for offline machines)."""
    dest = cached_path(url, root=root)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    shutil.copyfile(src, dest)
    return dest


__all__ = ["ChecksumMismatchError", "DownloadError", "OfflineCacheMiss", "PathManager", "cache_dir",
           "cached_path", "check_url", "copy_to_cache", "download", "file_digest", "is_offline", "verify_file"]
