"""Downloads from a misbehaving server on 127.0.0.1 (issue 13 item 5): no Content-Length and an
early close, a stall, an endless body, a lying Content-Length, and two processes fetching the
same file at once. Each must end in a clear error (nothing half-cached) or one good file."""
import hashlib
import logging
import os
import threading
import time

import numpy as np
import pytest
from model_zoo_fixtures import LocalServer
from test_trainer import _hook_log_records

from ssl_zoo.model_zoo import catalog
from ssl_zoo.model_zoo.download import ChecksumMismatchError, DownloadError, cached_path, download

BLOB = np.random.default_rng(1).integers(0, 256, 200_000, dtype=np.uint8).tobytes()
SHA = hashlib.sha256(BLOB).hexdigest()
RELEASE = threading.Event()  # ends the stalling handlers at teardown


def _no_length_then_close(h, n=50_000):
    """HTTP/1.0-style close-delimited body, cut short: looks complete without Content-Length."""
    h.send_response(200)
    h.send_header("Connection", "close")
    h.end_headers()
    h.wfile.write(BLOB[:n])
    h.close_connection = True


def _stall(h):
    h.send_response(200)
    h.send_header("Content-Length", str(len(BLOB)))
    h.end_headers()
    h.wfile.write(BLOB[:1000])
    h.wfile.flush()
    RELEASE.wait(30)
    h.close_connection = True


def _forever(h):
    h.send_response(200)
    h.send_header("Connection", "close")
    h.end_headers()
    try:
        while not RELEASE.is_set():
            h.wfile.write(b"\0" * 65536)
    except OSError:
        pass
    h.close_connection = True


def _claims_more(h):  # announces the full size, sends half, closes
    h.send_response(200)
    h.send_header("Content-Length", str(len(BLOB)))
    h.end_headers()
    h.wfile.write(BLOB[: len(BLOB) // 2])
    h.close_connection = True


def _claims_less(h):  # announces half: the client reads half and thinks it is done
    h.send_response(200)
    h.send_header("Content-Length", str(len(BLOB) // 2))
    h.end_headers()
    h.wfile.write(BLOB)
    h.close_connection = True


def _slow_full(h):  # a correct but slow response, so that concurrent clients overlap
    h.send_response(200)
    h.send_header("Content-Length", str(len(BLOB)))
    h.end_headers()
    for i in range(0, len(BLOB), 20_000):
        h.wfile.write(BLOB[i:i + 20_000])
        h.wfile.flush()
        time.sleep(0.05)


@pytest.fixture(scope="module")
def server():
    with LocalServer({"/good.bin": BLOB}) as s:
        s.custom.update({"/nolength.bin": _no_length_then_close, "/stall.bin": _stall, "/forever.bin": _forever,
                         "/claims_more.bin": _claims_more, "/claims_less.bin": _claims_less,
                         "/slow.bin": _slow_full})
        yield s
        RELEASE.set()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SSL_ZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SSL_ZOO_OFFLINE", raising=False)


def _leftovers(url):
    d = os.path.dirname(cached_path(url))
    return sorted(f for f in os.listdir(d) if not f.endswith(".lock")) if os.path.isdir(d) else []


def test_no_content_length_and_early_close_is_not_cached(server):
    url = server.url + "/nolength.bin"
    with pytest.raises(DownloadError, match="no Content-Length and there is no checksum or known size"):
        download(url, progress=False)
    assert _leftovers(url) == []  # before the fix: 50 kB cached forever as the complete file
    with pytest.raises(ChecksumMismatchError):  # with a checksum the truncation is caught
        download(url, sha256=SHA, progress=False)
    assert _leftovers(url) == []
    with pytest.raises(DownloadError, match="received 50000 bytes, the catalog says 200000"):
        download(url, expected_bytes=len(BLOB), progress=False)  # or with the catalog's size


def test_stalled_server_fails_after_the_socket_timeout_and_keeps_the_part_for_resume(server):
    url = server.url + "/stall.bin"
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match="interrupted at 1000 bytes"):
        download(url, sha256=SHA, progress=False, timeout=1.0)
    assert time.monotonic() - t0 < 15
    assert _leftovers(url) == ["stall.bin.part"]


def test_endless_body_hits_the_size_cap_or_the_deadline_and_the_part_is_deleted(server):
    url = server.url + "/forever.bin"
    with pytest.raises(DownloadError, match="more than 1000000 bytes received.*partial file was deleted"):
        download(url, sha256=SHA, progress=False, max_bytes=1_000_000)
    assert _leftovers(url) == []  # before the fix: a .part at the size cap
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match="not complete at the deadline.*partial file was deleted"):
        download(url, sha256=SHA, progress=False, deadline_s=1.0)
    assert time.monotonic() - t0 < 15 and _leftovers(url) == []


def test_lying_content_length(server):
    more = server.url + "/claims_more.bin"
    with pytest.raises(DownloadError, match="interrupted at 100000 of 200000 bytes"):
        download(more, progress=False)
    assert _leftovers(more) == ["claims_more.bin.part"]  # resumable, never renamed into place
    less = server.url + "/claims_less.bin"
    with pytest.raises(ChecksumMismatchError):
        download(less, sha256=SHA, progress=False)
    assert _leftovers(less) == []


def test_concurrent_downloads_of_one_file_fetch_it_once(server):
    """Two downloaders (threads with their own lock descriptors, as two ranks would have)."""
    url = server.url + "/slow.bin"
    n0 = len([r for r in server.requests if r["path"] == "/slow.bin"])
    results, errors = [], []

    def fetch():
        try:
            results.append(download(url, sha256=SHA, progress=False))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=fetch) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(results) == 3 and len(set(results)) == 1
    assert open(results[0], "rb").read() == BLOB
    assert len([r for r in server.requests if r["path"] == "/slow.bin"]) - n0 == 1  # one transfer
    assert _leftovers(url) == ["slow.bin", "slow.bin.sha256"]


def test_catalog_entry_without_checksum_warns(server, tmp_path, monkeypatch):
    path = tmp_path / "catalog.yaml"
    path.write_text(f"""
entries:
  plain:
    method: BYOL
    arch: resnet18
    format: ssl_zoo
    urls: ["{server.url}/good.bin"]
""")
    monkeypatch.setenv("SSL_ZOO_CATALOG", str(path))
    with _hook_log_records(logging.WARNING, "ssl_zoo.model_zoo") as records:
        local = catalog.download_entry("plain", progress=False)
    said = " ".join(r.getMessage() for r in records)
    assert "has no published checksum" in said and SHA in said  # the computed sha256, to record
    assert open(local, "rb").read() == BLOB  # complete by its Content-Length
