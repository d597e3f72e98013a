"""Tests for lightgcn_sparse.data: loaders, Interactions, resolution, download and splits."""

from __future__ import annotations

import hashlib
import http.server
import io
import sys
import threading
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from lightgcn_sparse import data as D
from lightgcn_sparse.data import (
    DataFileError,
    DatasetNotFoundError,
    DownloadError,
    Interactions,
    UnknownIdError,
    download_dataset,
    find_recbole_ml100k,
    load_csv,
    load_dataset,
    load_directory,
    load_ml1m,
    load_ml100k,
    load_movielens_csv,
    load_recbole,
    resolve,
    split_interactions,
)

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


def find_error(excinfo: pytest.ExceptionInfo, *fragments: str) -> str:
    message = str(excinfo.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


# ----------------------------------------------------------------------------- loaders


def test_load_ml100k_maps_ids_and_meta(ml100k_dir: Path) -> None:
    data = load_ml100k(ml100k_dir)
    assert (data.num_users, data.num_items, data.num_interactions) == (3, 3, 5)
    assert data.user_ids.tolist() == [1, 2, 3]
    assert data.item_ids.tolist() == [10, 20, 30]  # item 40 was never rated
    assert data.users.dtype == np.int64 and data.items.dtype == np.int64
    assert data.ratings.dtype == np.float32 and data.timestamps.dtype == np.int64
    assert data.users.tolist() == [0, 0, 1, 2, 1]
    assert data.items.tolist() == [0, 1, 0, 2, 2]
    assert data.ratings.tolist() == [5, 3, 4, 1, 2]
    meta = data.items_meta
    assert list(meta.columns) == ["title", "year", "genres"]
    assert meta.index.tolist() == [0, 1, 2]
    assert meta["title"].tolist() == ["Misérables, Les", "Star Wars", "unknown"]
    # The year comes from the title, else from the release date.
    assert meta["year"].tolist() == [1995, 1977, 1990]
    assert str(meta["year"].dtype) == "Int64"
    assert meta["genres"].tolist() == ["Drama|Musical", "Action|Sci-Fi", "unknown"]
    assert data.name == "ml-100k"


def test_load_ml100k_reads_u_genre(ml100k_dir: Path) -> None:
    names = ["Zero"] + [f"G{i}" for i in range(1, 19)]
    write(ml100k_dir / "u.genre", "".join(f"{n}|{i}\n" for i, n in enumerate(names)) + "\n")
    assert load_ml100k(ml100k_dir).items_meta["genres"].tolist()[1] == "G1|G15"


def test_load_ml100k_utf8_item_file(ml100k_dir: Path) -> None:
    write(ml100k_dir / "u.item", U_ITEM, encoding="utf-8")
    assert load_ml100k(ml100k_dir).items_meta["title"][0] == "Misérables, Les"


def test_load_ml100k_without_item_file(ml100k_dir: Path) -> None:
    (ml100k_dir / "u.item").unlink()
    data = load_ml100k(ml100k_dir)
    assert data.items_meta is None and data.num_items == 3


def test_load_ml1m(ml1m_dir: Path) -> None:
    data = load_ml1m(ml1m_dir)
    assert (data.num_users, data.num_items, data.num_interactions) == (2, 2, 3)
    assert data.item_ids.tolist() == [661, 1193]
    assert data.items_meta["title"].tolist() == [
        "Cité des enfants perdus, La",
        "One Flew Over the Cuckoo's Nest",
    ]
    assert data.items_meta["year"].tolist() == [1995, 1975]
    assert data.items_meta["genres"][0] == "Adventure|Sci-Fi"
    assert data.timestamps.tolist() == [978300760, 978302109, 9]


def test_load_movielens_csv(csv_dir: Path) -> None:
    data = load_movielens_csv(csv_dir)
    assert (data.num_users, data.num_items, data.num_interactions) == (2, 3, 4)
    assert data.ratings.tolist() == [4.0, 4.5, 0.5, 2.0]
    meta = data.items_meta
    assert meta["title"].tolist() == ["American President, The", "Babylon 5", "Amélie"]
    assert meta["year"].isna().tolist() == [False, True, False]
    assert meta["genres"].tolist() == ["Comedy|Drama|Romance", "Sci-Fi", ""]


def test_load_recbole_any_column_order(recbole_dir: Path) -> None:
    data = load_recbole(recbole_dir)
    assert data.name == "toy"
    assert data.user_ids.tolist() == [22, 186, 196]  # integer tokens become ints
    assert data.item_ids.tolist() == [242, 302]
    assert data.users.tolist() == [2, 1, 0]
    assert data.ratings.tolist() == [3, 3, 1]
    assert data.timestamps.tolist() == [881250949, 891717742, 878887116]
    assert data.items_meta["title"].tolist() == ["Kolya", "L.A. Confidential"]
    assert data.items_meta["year"].tolist() == [1996, 1997]
    assert data.items_meta["genres"][1] == "Crime|Film-Noir|Mystery"


def test_load_recbole_text_tokens_and_no_optional_fields(tmp_path: Path) -> None:
    write(tmp_path / "x.inter", "item_id:token\tuser_id:token\nb\tu1\na\tu2\n")
    data = load_recbole(tmp_path, "x")
    assert data.ratings is None and data.timestamps is None
    assert data.item_ids.tolist() == ["a", "b"] and data.user_index("u2") == 1


def test_load_recbole_requires_user_and_item(tmp_path: Path) -> None:
    write(tmp_path / "x.inter", "user_id:token\trating:float\n1\t3\n")
    with pytest.raises(DataFileError) as excinfo:
        load_recbole(tmp_path, "x")
    find_error(excinfo, "x.inter", "item_id")


def test_load_csv_with_and_without_header(tmp_path: Path) -> None:
    with_header = write(tmp_path / "a.csv", "user,item,rating,timestamp\n7,1,5,10\n8,2,3,11\n")
    without = write(tmp_path / "b.csv", "7,1,5,10\n8,2,3,11\n")
    for path in (with_header, without):
        data = load_csv(path)
        assert data.num_interactions == 2 and data.user_ids.tolist() == [7, 8]
        assert data.ratings.tolist() == [5, 3] and data.timestamps.tolist() == [10, 11]
    with pytest.raises(DataFileError, match="line 1: rating 'rating' is not a number"):
        load_csv(with_header, header=None)
    # An explicit header=0 eats the first line.
    assert load_csv(without, header=0).num_interactions == 1


def test_load_csv_two_columns_and_text_ids(tmp_path: Path) -> None:
    path = write(tmp_path / "pairs.tsv", "007\tx\n7\ty\n007\ty\n")
    data = load_csv(path, sep="\t", header=None)
    assert data.ratings is None and data.timestamps is None
    assert data.user_ids.tolist() == ["007", "7"]  # leading zeros keep ids distinct
    assert data.item_ids.tolist() == ["x", "y"]
    assert data.user_index("007") == 0 and data.user_index(7) == 1


def test_load_csv_rejects_extra_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "wide.csv", "1,2,3,4,5\n1,3,3,4,5\n")
    with pytest.raises(DataFileError) as excinfo:
        load_csv(path)
    find_error(excinfo, "wide.csv", "5 column", "2 to 4")


def test_load_csv_bad_header_argument(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "1,2\n")
    with pytest.raises(ValueError, match="header must be"):
        load_csv(path, header="yes")


def test_catalogue_is_interacted_items_only(ml100k_dir: Path) -> None:
    data = load_ml100k(ml100k_dir)
    assert 40 not in data.item_ids.tolist()
    assert "Never Rated" not in data.items_meta["title"].tolist()


def test_min_rating_applies_before_ids(ml100k_dir: Path) -> None:
    data = load_ml100k(ml100k_dir, min_rating=4)
    assert data.num_interactions == 2
    assert data.user_ids.tolist() == [1, 2]  # user 3 only rated 1
    assert data.item_ids.tolist() == [10]
    assert data.num_items == 1 and data.items_meta["title"].tolist() == ["Misérables, Les"]


def test_min_rating_errors(ml100k_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="min_rating"):
        load_ml100k(ml100k_dir, min_rating="4")
    with pytest.raises(ValueError, match="min_rating=9"):
        load_ml100k(ml100k_dir, min_rating=9)
    pairs = write(tmp_path / "p.csv", "1,2\n2,3\n")
    with pytest.raises(ValueError, match="needs ratings"):
        load_csv(pairs, min_rating=1)


# ----------------------------------------------------------------------------- file errors

ERROR_CASES = {
    "missing file": ("u.data", None, "file not found"),
    "empty file": ("u.data", "", "file is empty"),
    "wrong separator": ("u.data", "1,10,5,100\n2,10,4,101\n", "Is the separator right"),
    "too few columns": ("u.data", "1\t10\t5\n2\t10\t4\n", "found 3 column"),
    "too many fields": ("u.data", "1\t10\t5\t100\n2\t10\t4\t101\t9\n", "malformed line"),
    "non-numeric rating": ("u.data", "1\t10\t5\t100\n2\t10\tfive\t101\n", "'five' is not"),
    "truncated last line": ("u.data", "1\t10\t5\t100\n2\t10", "line 2: rating is missing"),
    "bad u.item": ("u.item", "10|Title (1995)|x\n", "found 3 '|'-separated fields"),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_ml100k_file_errors_name_the_file(ml100k_dir: Path, case: str) -> None:
    filename, content, fragment = ERROR_CASES[case]
    path = ml100k_dir / filename
    if content is None:
        path.unlink()
    else:
        write(path, content)
    with pytest.raises(ValueError) as excinfo:
        load_ml100k(ml100k_dir)
    assert isinstance(excinfo.value, DataFileError)
    assert not isinstance(excinfo.value, pd.errors.ParserError)
    find_error(excinfo, str(path), fragment)


def test_missing_file_is_also_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="u.data"):
        load_ml100k(tmp_path)


def test_parser_error_is_chained(ml100k_dir: Path) -> None:
    write(ml100k_dir / "u.data", "1\t10\t5\t100\n2\t10\t4\t101\t9\n")
    with pytest.raises(DataFileError) as excinfo:
        load_ml100k(ml100k_dir)
    assert isinstance(excinfo.value.__cause__, pd.errors.ParserError)


def test_header_only_file(csv_dir: Path) -> None:
    write(csv_dir / "ratings.csv", "userId,movieId,rating,timestamp\n")
    with pytest.raises(DataFileError) as excinfo:
        load_movielens_csv(csv_dir)
    find_error(excinfo, "ratings.csv", "no data rows")


def test_wrong_csv_header(csv_dir: Path) -> None:
    write(csv_dir / "ratings.csv", "user,movie,rating,timestamp\n1,1,4,1\n")
    with pytest.raises(DataFileError) as excinfo:
        load_movielens_csv(csv_dir)
    find_error(excinfo, "ratings.csv", "header is", "userId")


def test_ml1m_errors(ml1m_dir: Path) -> None:
    write(ml1m_dir / "ratings.dat", "1,1193,5,978300760\n")
    with pytest.raises(DataFileError) as excinfo:
        load_ml1m(ml1m_dir)
    find_error(excinfo, "ratings.dat", "'::'-separated", "separator")
    write(ml1m_dir / "ratings.dat", "1::1193::5::978300760\n")
    write(ml1m_dir / "movies.dat", "1193::Title (1975)\n")
    with pytest.raises(DataFileError) as excinfo:
        load_ml1m(ml1m_dir)
    find_error(excinfo, "movies.dat", "line 1", "expected 3")


def test_bad_encoding(recbole_dir: Path) -> None:
    raw = b"user_id:token\titem_id:token\n1\t2\n\xff\xfe\t3\n"
    (recbole_dir / "toy.inter").write_bytes(raw)
    with pytest.raises(DataFileError) as excinfo:
        load_recbole(recbole_dir)
    find_error(excinfo, "toy.inter", "UTF-8")
    assert isinstance(excinfo.value.__cause__, UnicodeDecodeError)


def test_recbole_header_not_tab_separated(tmp_path: Path) -> None:
    write(tmp_path / "x.inter", "user_id:token,item_id:token\n1,2\n")
    with pytest.raises(DataFileError) as excinfo:
        load_recbole(tmp_path, "x")
    find_error(excinfo, "x.inter", "tab-separated")


def test_recbole_header_without_types(tmp_path: Path) -> None:
    write(tmp_path / "x.inter", "user_id\titem_id\n1\t2\n")
    with pytest.raises(DataFileError) as excinfo:
        load_recbole(tmp_path, "x")
    find_error(excinfo, "x.inter", "'name:type'")


def test_movies_csv_non_numeric_id(csv_dir: Path) -> None:
    write(csv_dir / "movies.csv", "movieId,title,genres\nabc,Heat (1995),Action\n")
    with pytest.raises(DataFileError) as excinfo:
        load_movielens_csv(csv_dir)
    find_error(excinfo, "movies.csv", "line 2", "'abc'")


# ----------------------------------------------------------------------------- Interactions


def small() -> Interactions:
    return Interactions(
        users=np.array([0, 0, 1, 1, 1]),
        items=np.array([0, 1, 1, 1, 2]),
        num_users=3,
        num_items=4,
        user_ids=np.array(["a", "b", "c"], dtype=object),
        item_ids=np.array([10, 20, 30, 40]),
        ratings=np.array([1, 2, 3, 4, 5]),
        timestamps=np.array([5, 4, 3, 2, 1]),
        name="small",
    )


def test_to_csr_counts_duplicates_once() -> None:
    matrix = small().to_csr()
    assert isinstance(matrix, sp.csr_matrix)
    assert matrix.shape == (3, 4) and matrix.dtype == np.float32
    expected = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]], dtype=np.float32)
    np.testing.assert_array_equal(matrix.toarray(), expected)


def test_subset_keeps_catalogue() -> None:
    data = small()
    part = data.subset(np.array([True, False, False, False, True]))
    assert (part.num_users, part.num_items, part.num_interactions) == (3, 4, 2)
    assert part.users.tolist() == [0, 1] and part.ratings.tolist() == [1, 5]
    assert part.timestamps.tolist() == [5, 1]
    assert part.user_ids is data.user_ids and part.to_csr().shape == (3, 4)
    assert data.subset([4, 0]).items.tolist() == [2, 0]
    assert data.subset([]).num_interactions == 0


def test_subset_rejects_bad_selection() -> None:
    data = small()
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        data.subset(np.ones(4, dtype=bool))
    with pytest.raises(ValueError, match="found 5"):
        data.subset([5])
    with pytest.raises(TypeError, match="mask_or_index"):
        data.subset([0.5])


def test_id_lookup() -> None:
    data = small()
    assert data.user_index("b") == 1
    assert data.item_index(30) == 2 and data.item_index("30") == 2
    with pytest.raises(KeyError) as excinfo:
        data.user_index("zz")
    assert isinstance(excinfo.value, ValueError) and isinstance(excinfo.value, UnknownIdError)
    find_error(excinfo, "'zz'", "user", "small")
    with pytest.raises(ValueError, match="item id 99"):
        data.item_index(99)


def test_describe() -> None:
    stats = small().describe()
    assert stats["users"] == 3 and stats["items"] == 4 and stats["interactions"] == 5
    assert stats["unique_pairs"] == 4 and stats["density"] == pytest.approx(4 / 12)
    assert (stats["rating_min"], stats["rating_max"]) == (1.0, 5.0)
    assert (stats["timestamp_min"], stats["timestamp_max"]) == (1, 5)
    assert stats["interactions_per_user"] == {"min": 0, "median": 2.0, "max": 3}


def test_interactions_validation() -> None:
    base = dict(num_users=2, num_items=2, user_ids=np.arange(2), item_ids=np.arange(2))
    with pytest.raises(ValueError, match=r"users must lie in \[0, 2\), found 2"):
        Interactions(users=np.array([2]), items=np.array([0]), **base)
    with pytest.raises(ValueError, match="same length"):
        Interactions(users=np.array([0, 1]), items=np.array([0]), **base)
    with pytest.raises(ValueError, match="num_users"):
        Interactions(users=np.array([0]), items=np.array([0]), **{**base, "num_users": -1})
    with pytest.raises(ValueError, match="ratings must have shape"):
        Interactions(users=np.array([0]), items=np.array([0]), ratings=np.ones(2), **base)
    assert "num_interactions=1" in repr(
        Interactions(users=np.array([0]), items=np.array([1]), **base)
    )


# ----------------------------------------------------------------------------- real ml-100k


@pytest.fixture(scope="module")
def ml100k() -> Interactions:
    found, why = find_recbole_ml100k()
    if found is None:
        pytest.skip(f"needs the ml-100k copy in recbole ({why}): pip install --no-deps recbole")
    return load_recbole(found, "ml-100k")


def test_real_ml100k_from_recbole(ml100k: Interactions) -> None:
    assert (ml100k.num_users, ml100k.num_items, ml100k.num_interactions) == (943, 1682, 100000)
    assert ml100k.to_csr().nnz == 100000
    star_wars = ml100k.items_meta.iloc[ml100k.item_index(50)]
    assert star_wars["title"] == "Star Wars" and star_wars["year"] == 1977
    assert ml100k.describe()["rating_max"] == 5.0


def test_real_ml100k_split_sizes(ml100k: Interactions) -> None:
    train, valid, test = split_interactions(ml100k, "temporal")
    assert len(test) == len(valid) == 943  # every ml-100k user has >= 20 ratings
    train, valid, test = split_interactions(ml100k, "global", seed=3)
    assert (len(train), len(valid), len(test)) == (80000, 10000, 10000)


def test_find_recbole_does_not_import_it() -> None:
    if "recbole" in sys.modules:
        pytest.skip("recbole already imported by something else")
    found, _ = find_recbole_ml100k()
    if found is None:
        pytest.skip("recbole not installed")
    assert (found / "ml-100k.inter").is_file()
    assert "recbole" not in sys.modules


# ----------------------------------------------------------------------------- resolution


@pytest.fixture
def no_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty cache, no recbole copy and no mirror; returns the cache directory."""
    cache = tmp_path / "cache"
    monkeypatch.setenv(D.CACHE_ENV, str(cache))
    monkeypatch.delenv(D.MIRROR_ENV, raising=False)
    monkeypatch.setattr(resolve, "find_recbole_ml100k", lambda: (None, "recbole is not installed"))
    return cache


def test_data_dir_wins(no_sources: Path, ml100k_dir: Path, recbole_dir: Path) -> None:
    write(no_sources / "ml-100k" / "u.data", "5\t5\t5\t5\n")
    data = load_dataset("ml-100k", data_dir=ml100k_dir, download=False)
    assert data.num_interactions == 5 and data.name == "ml-100k"
    # data_dir may also be the parent of <name>/.
    assert load_dataset("ml-100k", ml100k_dir.parent, download=False).num_interactions == 5


def test_cache_before_recbole(monkeypatch: pytest.MonkeyPatch, no_sources: Path) -> None:
    write(no_sources / "ml-100k" / "u.data", "5\t5\t5\t5\n")
    monkeypatch.setattr(resolve, "find_recbole_ml100k", lambda: pytest.fail("recbole consulted"))
    data = load_dataset("ml-100k", download=False)
    assert data.num_interactions == 1 and data.source == str(no_sources / "ml-100k")


def test_cache_dir_argument_beats_env(no_sources: Path, tmp_path: Path) -> None:
    write(no_sources / "ml-1m" / "ratings.dat", "1::2::3::4\n")
    other = tmp_path / "other"
    write(other / "ml-1m" / "ratings.dat", "1::2::3::4\n2::2::3::4\n")
    assert load_dataset("ml-1m", download=False).num_interactions == 1
    assert load_dataset("ml-1m", cache_dir=other, download=False).num_interactions == 2


def test_recbole_fallback(
    monkeypatch: pytest.MonkeyPatch, no_sources: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "site" / "ml-100k"
    write(copy / "ml-100k.inter", "user_id:token\titem_id:token\n1\t2\n3\t2\n")
    monkeypatch.setattr(resolve, "find_recbole_ml100k", lambda: (copy, ""))
    data = load_dataset("ml-100k", download=False)
    assert data.num_interactions == 2 and data.name == "ml-100k"


def test_all_sources_fail_message(no_sources: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as excinfo:
        load_dataset("ml-100k", data_dir=tmp_path / "nope", download=False)
    assert isinstance(excinfo.value, FileNotFoundError)
    message = find_error(
        excinfo,
        str(tmp_path / "nope"),
        str(no_sources / "ml-100k"),
        "recbole is not installed",
        "download=False",
        "--data-dir",
        "pip install --no-deps recbole==1.2.1",
    )
    assert len(excinfo.value.attempts) == 5, message


def test_recbole_not_tried_for_other_datasets(monkeypatch: pytest.MonkeyPatch, no_sources) -> None:
    monkeypatch.setattr(resolve, "find_recbole_ml100k", lambda: pytest.fail("recbole consulted"))
    with pytest.raises(DatasetNotFoundError) as excinfo:
        load_dataset("ml-1m", download=False)
    attempts = excinfo.value.attempts
    assert len(attempts) == 2 and not any(a.startswith("recbole") for a in attempts)
    assert "pip install" not in str(excinfo.value)


def test_malformed_data_dir_raises_not_falls_through(no_sources: Path, ml100k_dir: Path) -> None:
    write(ml100k_dir / "u.data", "1\t10\tbad\t100\n")
    with pytest.raises(DataFileError, match="'bad' is not a number"):
        load_dataset("ml-100k", data_dir=ml100k_dir, download=False)


def test_load_dataset_from_paths(
    no_sources: Path, ml100k_dir: Path, recbole_dir: Path, tmp_path: Path
) -> None:
    assert load_dataset(ml100k_dir).num_interactions == 5
    assert load_dataset(recbole_dir / "toy.inter").num_interactions == 3
    csv_path = write(tmp_path / "pairs.csv", "user,item\n1,2\n")
    assert load_dataset(str(csv_path)).num_interactions == 1
    assert load_directory(recbole_dir).name == "toy"
    with pytest.raises(DatasetNotFoundError, match="neither a known dataset"):
        load_dataset(tmp_path / "missing")
    with pytest.raises(TypeError, match="name"):
        load_dataset(3)


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(D.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert D.default_cache_dir() == tmp_path / "lightgcn_sparse"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert D.default_cache_dir() == Path.home() / ".cache" / "lightgcn_sparse"
    monkeypatch.setenv(D.CACHE_ENV, str(tmp_path / "x"))
    assert D.default_cache_dir() == tmp_path / "x"


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


# ----------------------------------------------------------------------------- splits


def synthetic(num_users: int = 40, num_items: int = 30, seed: int = 0) -> Interactions:
    """Users with 1..25 interactions; timestamps are unique ids of the interactions, with
    some per-user ties in time broken by position."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 26, size=num_users)
    users = np.repeat(np.arange(num_users), counts)
    rng.shuffle(users)
    n = len(users)
    return Interactions(
        users=users,
        items=rng.integers(0, num_items, size=n),
        num_users=num_users,
        num_items=num_items,
        user_ids=np.arange(num_users) + 100,
        item_ids=np.arange(num_items) + 1000,
        ratings=rng.integers(1, 6, size=n),
        timestamps=np.arange(n),  # identifies each interaction
    )


def recbole_counts(total: int, ratios: list[float]) -> list[int]:
    """RecBole 1.2.1 Dataset._calcu_split_ids, turned into part sizes."""
    cnt = [int(ratios[i] * total) for i in range(len(ratios))]
    cnt[0] = total - sum(cnt[1:])
    for i in range(1, len(ratios)):
        if cnt[0] <= 1:
            break
        if 0 < ratios[-i] * total < 1:
            cnt[-i] += 1
            cnt[0] -= 1
    return cnt


def per_user(part: Interactions, num_users: int) -> np.ndarray:
    return np.bincount(part.users, minlength=num_users)


@pytest.mark.parametrize("method", D.SPLIT_METHODS)
def test_split_partitions_exactly(method: str) -> None:
    data = synthetic()
    split = split_interactions(data, method, seed=5)
    stamps = np.concatenate([p.timestamps for p in split])
    assert sorted(stamps.tolist()) == list(range(data.num_interactions))
    for part in split:
        assert part.num_users == data.num_users and part.num_items == data.num_items
        assert part.user_ids is data.user_ids
        np.testing.assert_array_equal(part.users, data.users[part.timestamps])
        np.testing.assert_array_equal(part.items, data.items[part.timestamps])
        assert np.all(np.diff(part.timestamps) > 0)  # original order kept


@pytest.mark.parametrize("method", ["random", "global", "stratified"])
def test_split_deterministic_given_seed(method: str) -> None:
    data = synthetic()
    a = split_interactions(data, method, seed=1)
    b = split_interactions(data, method, seed=1)
    c = split_interactions(data, method, seed=2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.timestamps, y.timestamps)
    assert not np.array_equal(a.test.timestamps, c.test.timestamps)


def test_random_split_matches_recbole_counts() -> None:
    data = synthetic()
    ratios = [0.8, 0.1, 0.1]
    split = split_interactions(data, "random", seed=0)
    totals = per_user(data, data.num_users)
    got = np.stack([per_user(p, data.num_users) for p in split], axis=1)
    expected = np.array([recbole_counts(int(t), ratios) for t in totals])
    np.testing.assert_array_equal(got, expected)


def test_random_split_custom_ratios_are_normalized() -> None:
    data = synthetic(seed=3)
    split = split_interactions(data, "random", ratios=(6, 2, 2), seed=0)
    totals = per_user(data, data.num_users)
    expected = np.array([recbole_counts(int(t), [0.6, 0.2, 0.2]) for t in totals])
    got = np.stack([per_user(p, data.num_users) for p in split], axis=1)
    np.testing.assert_array_equal(got, expected)


def test_global_split_sizes() -> None:
    data = synthetic()
    n = data.num_interactions
    split = split_interactions(data, "global", seed=0)
    assert [len(p) for p in split] == recbole_counts(n, [0.8, 0.1, 0.1])
    two_way = split_interactions(data, "global", ratios=(0.7, 0.3))
    assert len(two_way.valid) == 0 and len(two_way.test) == int(0.3 * n)


def test_stratified_split_counts() -> None:
    data = synthetic()
    split = split_interactions(data, "stratified", seed=0)
    assert len(split.valid) == 0
    totals = per_user(data, data.num_users)
    expected_train = [sum(k / t <= 0.75 for k in range(1, t + 1)) for t in totals]
    assert per_user(split.train, data.num_users).tolist() == expected_train
    three = split_interactions(data, "stratified", ratios=(0.6, 0.2, 0.2), seed=0)
    assert len(three.valid) > 0


def test_temporal_split_takes_latest() -> None:
    users = np.array([0, 0, 0, 1, 1, 2, 0])
    stamps = np.array([10, 30, 20, 5, 5, 7, 30])  # user 0 ties at 30, user 1 ties at 5
    data = Interactions(
        users=users,
        items=np.arange(7),
        num_users=3,
        num_items=7,
        user_ids=np.arange(3),
        item_ids=np.arange(7),
        timestamps=stamps,
    )
    train, valid, test = split_interactions(data, "temporal")
    # Ties break by position: the later row counts as later.
    assert sorted(test.items.tolist()) == [4, 6]
    assert valid.items.tolist() == [1]
    assert sorted(train.items.tolist()) == [0, 2, 3, 5]  # user 2's only interaction stays


def test_split_argument_errors() -> None:
    data = synthetic()
    with pytest.raises(ValueError, match="method must be one of"):
        split_interactions(data, "leave-one-out")
    with pytest.raises(ValueError, match="ratios"):
        split_interactions(data, "random", ratios=(0.5,))
    with pytest.raises(ValueError, match="train > 0"):
        split_interactions(data, "random", ratios=(0, 0.5, 0.5))
    with pytest.raises(ValueError, match="ratios is not used"):
        split_interactions(data, "temporal", ratios=(0.8, 0.2))
    with pytest.raises(ValueError, match="seed"):
        split_interactions(data, "random", seed=-1)
    with pytest.raises(TypeError, match="data must be Interactions"):
        split_interactions(data.to_csr(), "random")
    no_time = Interactions(
        users=np.array([0]),
        items=np.array([0]),
        num_users=1,
        num_items=1,
        user_ids=np.array([1]),
        item_ids=np.array([1]),
        name="pairs",
    )
    with pytest.raises(ValueError, match="needs timestamps.*pairs"):
        split_interactions(no_time, "temporal")
