"""Tests for lightgcn_sparse.data.download, against a local HTTP server (loopback only)."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import threading
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from test_data_common import U_DATA, U_ITEM, find_error

from lightgcn_sparse import data as D
from lightgcn_sparse.data import (
    DataFileError,
    DatasetNotFoundError,
    DownloadError,
    download_dataset,
    load_dataset,
    load_ml100k,
)

# Fixtures (ml100k_dir, ml1m_dir, csv_dir, recbole_dir, no_sources) come from here.
pytest_plugins = ["test_data_common"]

# ----------------------------------------------------------------------------- download


def ml100k_zip(members: dict[str, str] | None = None) -> bytes:
    members = members or {"ml-100k/u.data": U_DATA, "ml-100k/u.item": U_ITEM}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text.encode("latin-1"))
    return buffer.getvalue()


class Server:
    """Serves ``routes[path] = (body, mode)``; mode "ok", "truncate" or an HTTP status."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[bytes, str | int]] = {}
        self.hits: Counter[str] = Counter()
        routes, hits = self.routes, self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits[self.path] += 1
                body, mode = routes.get(self.path, (b"", 404))
                if isinstance(mode, int):
                    self.send_error(mode)
                    return
                self.send_response(200)
                length = len(body) + (1000 if mode == "truncate" else 0)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(body if mode == "ok" else body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/movielens/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.close()


def serve_zip(
    server: Server, monkeypatch: pytest.MonkeyPatch, body: bytes, mode: str = "ok"
) -> None:
    server.routes["/movielens/ml-100k.zip"] = (body, mode)
    digest = hashlib.sha256(body).hexdigest()
    monkeypatch.setitem(D.CHECKSUMS, "ml-100k", (digest, len(body)))


def cache_leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_download_success(
    server: Server, monkeypatch: pytest.MonkeyPatch, no_sources: Path, capsys
) -> None:
    serve_zip(server, monkeypatch, ml100k_zip())
    data = load_dataset("ml-100k", base_url=server.url)
    assert data.num_interactions == 5 and data.items_meta["title"][1] == "Star Wars"
    assert cache_leftovers(no_sources) == ["ml-100k"]  # no .part, no .zip
    assert (no_sources / "ml-100k" / "u.data").is_file()
    assert "Downloading ml-100k.zip" in capsys.readouterr().err
    # A second load uses the cache without the network.
    assert load_dataset("ml-100k", base_url=server.url).num_interactions == 5
    assert server.hits["/movielens/ml-100k.zip"] == 1


def test_download_uses_mirror_env(
    server: Server, monkeypatch: pytest.MonkeyPatch, no_sources: Path
) -> None:
    serve_zip(server, monkeypatch, ml100k_zip())
    monkeypatch.setenv(D.MIRROR_ENV, server.url)
    assert load_dataset("ml-100k", progress=False).num_interactions == 5


def test_download_wrong_checksum(
    server: Server, monkeypatch: pytest.MonkeyPatch, no_sources: Path
) -> None:
    body = ml100k_zip()
    server.routes["/movielens/ml-100k.zip"] = (body, "ok")
    monkeypatch.setitem(D.CHECKSUMS, "ml-100k", ("0" * 64, len(body)))
    with pytest.raises(DatasetNotFoundError) as excinfo:
        load_dataset("ml-100k", base_url=server.url, progress=False)
    find_error(excinfo, "SHA-256 mismatch", "deleted", server.url)
    assert isinstance(excinfo.value.__cause__, DownloadError)
    assert cache_leftovers(no_sources) == []


def test_download_truncated(
    server: Server, monkeypatch: pytest.MonkeyPatch, no_sources: Path
) -> None:
    serve_zip(server, monkeypatch, ml100k_zip(), mode="truncate")
    with pytest.raises(DownloadError, match="truncated"):
        download_dataset("ml-100k", no_sources, base_url=server.url, progress=False)
    assert cache_leftovers(no_sources) == []


def test_download_http_error(server: Server, no_sources: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_dataset("ml-100k", no_sources, base_url=server.url, progress=False)
    assert cache_leftovers(no_sources) == []


def test_download_needs_checksum_unless_verify_false(
    server: Server, monkeypatch: pytest.MonkeyPatch, no_sources: Path
) -> None:
    serve_zip(server, monkeypatch, ml100k_zip())
    monkeypatch.setitem(D.CHECKSUMS, "ml-100k", (None, None))
    with pytest.raises(DownloadError, match="verify=False"):
        download_dataset("ml-100k", no_sources, base_url=server.url, progress=False)
    assert server.hits["/movielens/ml-100k.zip"] == 0
    target = download_dataset(
        "ml-100k", no_sources, base_url=server.url, verify=False, progress=False
    )
    assert load_ml100k(target).num_interactions == 5


@pytest.mark.parametrize("member", ["../evil/u.data", "/abs/u.data"])
def test_download_refuses_unsafe_zip(
    server: Server, monkeypatch: pytest.MonkeyPatch, no_sources: Path, member: str
) -> None:
    serve_zip(server, monkeypatch, ml100k_zip({member: U_DATA, "ml-100k/u.data": U_DATA}))
    with pytest.raises(DownloadError, match="unsafe member"):
        download_dataset("ml-100k", no_sources, base_url=server.url, progress=False)
    assert cache_leftovers(no_sources) == []
    assert not (no_sources.parent / "evil").exists()


def test_download_rejects_zip_without_data(
    server: Server, monkeypatch: pytest.MonkeyPatch, no_sources: Path
) -> None:
    serve_zip(server, monkeypatch, ml100k_zip({"ml-100k/README": "hello"}))
    with pytest.raises(DownloadError, match="holds no ml-100k data"):
        download_dataset("ml-100k", no_sources, base_url=server.url, progress=False)
    assert cache_leftovers(no_sources) == []


def test_download_unknown_name(no_sources: Path) -> None:
    with pytest.raises(ValueError, match="ml-10m"):
        download_dataset("ml-10m", no_sources)


# ----------------------------------------------------------------------------- benchmark files

TRAIN, TEST = "0 1 2\n1 0 1 3\n2\n", "0 3\n1 2\n3 4 0\n"  # 4 users, 5 items, 5 + 4 pairs


def serve_benchmark(
    server: Server,
    monkeypatch: pytest.MonkeyPatch,
    train: str = TRAIN,
    mode: str = "ok",
    digest: str | None = None,
) -> None:
    """Serve gowalla/{train,test}.txt; the catalogue expects the small counts above."""
    server.routes["/movielens/gowalla/train.txt"] = (train.encode(), mode)
    server.routes["/movielens/gowalla/test.txt"] = (TEST.encode(), "ok")
    digest = digest or hashlib.sha256(TEST.encode()).hexdigest()
    monkeypatch.setitem(D.CHECKSUMS, "gowalla", (digest, None))
    small = dataclasses.replace(D.CATALOG["gowalla"], counts=(4, 5, 5, 4))
    monkeypatch.setitem(D.CATALOG, "gowalla", small)


def test_benchmark_urls() -> None:
    base = "https://raw.githubusercontent.com/gusye1234/LightGCN-PyTorch/master/data/"
    for name in ("gowalla", "yelp2018", "amazon-book"):
        urls = D.CATALOG[name].urls()
        assert urls == [f"{base}{name}/test.txt", f"{base}{name}/train.txt"]
        assert name in D.DATASETS and D.CHECKSUMS[name][0]


def test_benchmark_download(server: Server, monkeypatch: pytest.MonkeyPatch, no_sources) -> None:
    serve_benchmark(server, monkeypatch)
    data = load_dataset("gowalla", base_url=server.url, progress=False)
    assert (data.num_users, data.num_items, data.num_interactions) == (4, 5, 9)
    assert data.name == "gowalla" and data.format == "benchmark"
    assert cache_leftovers(no_sources) == ["gowalla"]
    assert cache_leftovers(no_sources / "gowalla") == ["test.txt", "train.txt"]
    assert (no_sources / "gowalla" / "train.txt").read_text() == TRAIN
    assert load_dataset("gowalla", base_url=server.url).num_interactions == 9
    assert server.hits["/movielens/gowalla/train.txt"] == 1


def test_benchmark_download_uses_its_mirror_env(
    server: Server, monkeypatch: pytest.MonkeyPatch, no_sources: Path
) -> None:
    serve_benchmark(server, monkeypatch)
    monkeypatch.setenv(D.BENCHMARK_MIRROR_ENV, server.url)
    assert load_dataset("gowalla", progress=False).num_interactions == 9


@pytest.mark.parametrize(
    "case, fragments",
    [
        ("checksum", ["test.txt: SHA-256 mismatch", "deleted"]),
        ("counts", ["gowalla as published has 4 users, 5 items, 5 train", "5 users", "deleted"]),
        ("truncated", ["train.txt: truncated download", "deleted"]),
    ],
)
def test_benchmark_download_failures_leave_nothing(
    server: Server,
    monkeypatch: pytest.MonkeyPatch,
    no_sources: Path,
    case: str,
    fragments: list[str],
) -> None:
    serve_benchmark(
        server,
        monkeypatch,
        train=TRAIN + "4 1\n" if case == "counts" else TRAIN,
        mode="truncate" if case == "truncated" else "ok",
        digest="0" * 64 if case == "checksum" else None,
    )
    with pytest.raises(DatasetNotFoundError) as excinfo:
        load_dataset("gowalla", base_url=server.url, progress=False)
    find_error(excinfo, *fragments)
    assert isinstance(excinfo.value.__cause__, DownloadError)
    assert cache_leftovers(no_sources) == []


def test_benchmark_counts_checked_wherever_found(
    server: Server, monkeypatch: pytest.MonkeyPatch, no_sources: Path
) -> None:
    serve_benchmark(server, monkeypatch, train=TRAIN + "4 1\n")
    assert load_dataset("gowalla", base_url=server.url, verify=False).num_users == 5
    with pytest.raises(DataFileError) as excinfo:  # the copy now in the cache
        load_dataset("gowalla", download=False)
    find_error(excinfo, str(no_sources / "gowalla"), "as published has", "pass")
    assert load_dataset("gowalla", download=False, verify=False).num_users == 5
    assert load_dataset(no_sources / "gowalla").num_users == 5  # a path is not checked
