"""Tests for lightgcn_sparse.data.formats: each loader on small files, and the real ml-100k."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from test_data_common import U_ITEM, find_error, write

from lightgcn_sparse.data import (
    DataFileError,
    Interactions,
    find_recbole_ml100k,
    load_csv,
    load_ml1m,
    load_ml100k,
    load_movielens_csv,
    load_recbole,
    split_interactions,
)

# Fixtures (ml100k_dir, ml1m_dir, csv_dir, recbole_dir, no_sources) come from here.
pytest_plugins = ["test_data_common"]

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


@pytest.mark.parametrize("header", ["uid,iid", "visitorid,itemid", "user_key,item_key"])
def test_load_csv_infers_an_unfamiliar_header(tmp_path: Path, header: str) -> None:
    data = load_csv(write(tmp_path / "a.csv", f"{header}\n1,2\n3,4\n3,2\n"))
    assert (data.num_users, data.num_items, data.num_interactions) == (2, 2, 3)
    assert data.user_ids.tolist() == [1, 3] and data.item_ids.tolist() == [2, 4]
    # Text ids everywhere (names not known as column names), or integer ids on the first
    # line too: no header.
    assert load_csv(write(tmp_path / "b.csv", "ab,cd\nu1,i2\n")).num_interactions == 2
    assert load_csv(write(tmp_path / "c.csv", "9,8\n1,2\n")).num_interactions == 2


def test_load_csv_knows_shop_headers_and_reports_a_bad_first_rating(tmp_path: Path) -> None:
    shop = load_csv(write(tmp_path / "s.csv", "customer,product\nc1,p25\nc2,p3\n"))
    assert shop.user_ids.tolist() == ["c1", "c2"] and shop.num_interactions == 2
    # Integer ids like the lines after it: line 1 is data, and its rating is wrong.
    with pytest.raises(DataFileError, match="line 1: rating 'x' is not a number"):
        load_csv(write(tmp_path / "r.csv", "1,2,x\n1,3,5\n2,2,4\n"))
    assert load_csv(write(tmp_path / "h.csv", "a,b,rating\nu1,i1,5\n")).num_interactions == 1


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
    assert ml100k.stats()["rating_max"] == 5.0
    assert ml100k.describe()["ratings (min / mean / max)"] == "1 / 3.53 / 5"


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


def test_loaders_record_files_and_format(
    ml100k_dir: Path, ml1m_dir: Path, csv_dir: Path, recbole_dir: Path, tmp_path: Path
) -> None:
    cases = [
        (load_ml100k(ml100k_dir), "ml-100k", [ml100k_dir / "u.data", ml100k_dir / "u.item"]),
        (load_ml1m(ml1m_dir), "ml-1m", [ml1m_dir / "ratings.dat", ml1m_dir / "movies.dat"]),
        (
            load_movielens_csv(csv_dir),
            "movielens-csv",
            [csv_dir / "ratings.csv", csv_dir / "movies.csv"],
        ),
        (
            load_recbole(recbole_dir),
            "recbole",
            [recbole_dir / "toy.inter", recbole_dir / "toy.item"],
        ),
        (load_csv(write(tmp_path / "p.csv", "1,2\n")), "delimited", [tmp_path / "p.csv"]),
    ]
    for data, fmt, files in cases:
        assert data.format == fmt and data.source == tuple(map(str, files))
    (ml100k_dir / "u.item").unlink()
    assert load_ml100k(ml100k_dir).source == (str(ml100k_dir / "u.data"),)


def test_loaders_take_one_of_their_files(ml100k_dir: Path, recbole_dir: Path) -> None:
    assert load_ml100k(ml100k_dir / "u.item").num_interactions == 5
    assert load_recbole(recbole_dir / "toy.item").name == "toy"


def test_load_csv_binary_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "binary.csv"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(DataFileError, match="binary.csv"):
        load_csv(path)
