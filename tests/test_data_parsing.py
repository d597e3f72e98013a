"""Tests for lightgcn_sparse.data.parsing: errors that name the file, line and value."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from test_data_common import find_error, write

from lightgcn_sparse.data import (
    DataFileError,
    load_csv,
    load_ml1m,
    load_ml100k,
    load_movielens_csv,
    load_recbole,
)

# Fixtures (ml100k_dir, ml1m_dir, csv_dir, recbole_dir, no_sources) come from here.
pytest_plugins = ["test_data_common"]

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
    "infinite rating": ("u.data", "1\t10\t5\t100\n2\t10\tinf\t101\n", "line 2: rating inf is not"),
    "infinite time": ("u.data", "1\t10\t5\t100\n2\t10\t4\t-inf\n", "timestamp -inf is not finite"),
    "fractional time": ("u.data", "1\t10\t5\t100\n2\t10\t4\t1.5\n", "timestamp 1.5 is not an"),
}


def test_numbers_are_shown_plainly(ml100k_dir: Path) -> None:
    write(ml100k_dir / "u.data", "1\t10\tinf\t100\n")
    with pytest.raises(DataFileError) as excinfo:
        load_ml100k(ml100k_dir)
    message = find_error(excinfo, "line 1: rating inf is not finite")
    assert "np." not in message


@pytest.mark.parametrize("other", [";", "\t"])
def test_mixed_separators_get_a_hint(tmp_path: Path, other: str) -> None:
    path = write(tmp_path / "mixed.csv", f"1,2,3\n4,5,1\n6{other}7{other}2\n")
    with pytest.raises(DataFileError) as excinfo:
        load_csv(path)
    find_error(excinfo, "line 3: item is missing", "(is the separator ',' used on every line?)")


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
