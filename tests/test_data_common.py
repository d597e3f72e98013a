"""Builders and fixtures shared by the tests/test_data_*.py modules; this file holds no
tests. Modules that use the fixtures name it in ``pytest_plugins``."""

from __future__ import annotations

from pathlib import Path

import pytest

from lightgcn_sparse import data as D
from lightgcn_sparse.data import resolve

# ----------------------------------------------------------------------------- fixtures

U_DATA = "1\t10\t5\t100\n1\t20\t3\t101\n2\t10\t4\t102\n3\t30\t1\t103\n2\t30\t2\t104\n"
GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
          "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
          "Romance", "Sci-Fi", "Thriller", "War", "Western"]  # fmt: skip


def u_item_line(item: int, title: str, date: str, genres: set[str]) -> str:
    flags = "|".join("1" if g in genres else "0" for g in GENRES)
    return f"{item}|{title}|{date}||http://imdb/{item}|{flags}\n"


U_ITEM = (
    u_item_line(10, "Misérables, Les (1995)", "01-Jan-1995", {"Drama", "Musical"})
    + u_item_line(20, "Star Wars (1977)", "01-Jan-1977", {"Action", "Sci-Fi"})
    + u_item_line(30, "unknown", "01-Jan-1990", {"unknown"})
    + u_item_line(40, "Never Rated (2000)", "01-Jan-2000", {"Drama"})
)


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture
def ml100k_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "ml-100k"
    write(directory / "u.data", U_DATA)
    write(directory / "u.item", U_ITEM, encoding="latin-1")
    return directory


@pytest.fixture
def ml1m_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "ml-1m"
    write(directory / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::9")
    movies = "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::Cité des enfants perdus, La (1995)::Adventure|Sci-Fi\n"  # noqa: E501
    write(directory / "movies.dat", movies, encoding="latin-1")
    return directory


@pytest.fixture
def csv_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "ml-latest-small"
    write(
        directory / "ratings.csv",
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n"
        "6,3,0.5,964982224\n6,5,2.0,964983815\n",
    )
    write(
        directory / "movies.csv",
        'movieId,title,genres\n1,"American President, The (1995)",Comedy|Drama|Romance\n'
        "3,Babylon 5,Sci-Fi\n5,Amélie (2001),(no genres listed)\n",
    )
    return directory


@pytest.fixture
def recbole_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "toy"
    # Columns deliberately out of the usual order, plus an unused column.
    write(
        directory / "toy.inter",
        "timestamp:float\titem_id:token\tlabel:float\tuser_id:token\trating:float\n"
        "881250949\t242\t1\t196\t3\n891717742\t302\t0\t186\t3\n878887116\t242\t1\t22\t1\n",
    )
    write(
        directory / "toy.item",
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "242\tKolya\t1996\tComedy\n302\tL.A. Confidential\t1997\tCrime Film-Noir Mystery\n",
    )
    return directory


def benchmark_dir(root: Path, valid: str | None = None, **files: str) -> Path:
    """A benchmark folder: user 3 and item 4 occur only in test.txt, user 2 has no items."""
    directory = root / "bench"
    write(directory / "train.txt", files.get("train", "0 1 2\n1 0 1 3\n2\n"))
    write(directory / "test.txt", files.get("test", "0 3\n1 2\n3 4 0\n"))
    if valid is not None:
        write(directory / "valid.txt", valid)
    return directory


def find_error(excinfo: pytest.ExceptionInfo, *fragments: str) -> str:
    message = str(excinfo.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


@pytest.fixture
def no_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty cache, no recbole copy and no mirror; returns the cache directory."""
    cache = tmp_path / "cache"
    monkeypatch.setenv(D.CACHE_ENV, str(cache))
    monkeypatch.delenv(D.MIRROR_ENV, raising=False)
    monkeypatch.delenv(D.BENCHMARK_MIRROR_ENV, raising=False)
    monkeypatch.setattr(resolve, "find_recbole_ml100k", lambda: (None, "recbole is not installed"))
    return cache
