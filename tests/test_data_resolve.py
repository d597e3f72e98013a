"""Tests for lightgcn_sparse.data.resolve: where named datasets are looked for."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_data_common import find_error, write

from lightgcn_sparse import data as D
from lightgcn_sparse.data import (
    DataFileError,
    DatasetNotFoundError,
    load_dataset,
    load_directory,
    resolve,
)

# Fixtures (ml100k_dir, ml1m_dir, csv_dir, recbole_dir, no_sources) come from here.
pytest_plugins = ["test_data_common"]

# ----------------------------------------------------------------------------- resolution


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
    assert data.num_interactions == 1 and data.source == (str(no_sources / "ml-100k/u.data"),)
    assert data.format == "ml-100k"


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
        load_dataset("ml-100k", download=False)
    assert isinstance(excinfo.value, FileNotFoundError)
    message = find_error(
        excinfo,
        str(no_sources / "ml-100k"),
        "recbole is not installed",
        "download=False",
        "--data-dir",
        "pip install --no-deps recbole==1.2.1",
    )
    assert len(excinfo.value.attempts) == 3, message


def test_missing_data_dir_is_the_only_place_looked_at(
    monkeypatch: pytest.MonkeyPatch, no_sources: Path, tmp_path: Path
) -> None:
    write(no_sources / "ml-100k" / "u.data", "5\t5\t5\t5\n")  # the cache has a copy
    monkeypatch.setattr(resolve, "find_recbole_ml100k", lambda: pytest.fail("recbole consulted"))
    with pytest.raises(DatasetNotFoundError) as excinfo:
        load_dataset("ml-100k", data_dir=tmp_path / "nope")
    find_error(excinfo, f"data_dir {tmp_path / 'nope'} does not exist", "only place looked at")
    assert excinfo.value.attempts == [f"data_dir {tmp_path / 'nope'}: no such directory"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetNotFoundError) as excinfo:
        load_dataset("ml-100k", data_dir=empty)
    find_error(excinfo, "no u.data or *.inter file", "drop data_dir (--data-dir)")
    assert len(excinfo.value.attempts) == 2  # data_dir/ml-100k and data_dir, nothing else


def test_name_needs_its_format(no_sources: Path, ml100k_dir: Path) -> None:
    with pytest.raises(DataFileError) as excinfo:
        load_dataset("ml-latest-small", data_dir=ml100k_dir)
    find_error(
        excinfo,
        f"{ml100k_dir}: holds ml-100k (u.data), but dataset 'ml-latest-small' comes as "
        "movielens-csv (ratings.csv)",
        "point data_dir (--data-dir) at a copy of ml-latest-small",
    )
    write(no_sources / "ml-1m" / "ratings.csv", "userId,movieId,rating,timestamp\n1,2,3,4\n")
    with pytest.raises(DataFileError, match="comes as ml-1m .ratings.dat.; remove"):
        load_dataset("ml-1m", download=False)


def test_folder_with_several_formats(
    no_sources: Path, ml100k_dir: Path, csv_dir: Path, tmp_path: Path
) -> None:
    both = tmp_path / "both"
    for source in (ml100k_dir, csv_dir):
        for file in source.iterdir():
            write(both / file.name, file.read_text(encoding="latin-1"), encoding="latin-1")
    with pytest.raises(DataFileError) as excinfo:
        load_dataset(both)
    find_error(
        excinfo,
        "ml-100k (u.data) and movielens-csv (ratings.csv)",
        f"pass the file to read instead, e.g. {both / 'u.data'} or {both / 'ratings.csv'}",
    )
    from_csv = load_dataset(both / "ratings.csv")
    assert from_csv.format == "movielens-csv" and from_csv.num_interactions == 4
    assert from_csv.source == (str(both / "ratings.csv"), str(both / "movies.csv"))
    from_u_data = load_dataset(both / "u.data")
    assert from_u_data.format == "ml-100k" and from_u_data.num_interactions == 5
    # A name picks its own format out of the folder.
    assert load_dataset("ml-latest-small", data_dir=both).format == "movielens-csv"


def test_data_dir_argument_errors(no_sources: Path, ml100k_dir: Path) -> None:
    with pytest.raises(DataFileError, match="is a file, not a folder"):
        load_dataset("ml-100k", data_dir=ml100k_dir / "u.data")
    with pytest.raises(ValueError, match="data_dir is only used with a dataset name"):
        load_dataset(ml100k_dir, data_dir=ml100k_dir)


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
    assert load_dataset(recbole_dir).source == (
        str(recbole_dir / "toy.inter"),
        str(recbole_dir / "toy.item"),
    )
    with pytest.raises(DatasetNotFoundError, match="neither a known dataset"):
        load_dataset(tmp_path / "missing")
    with pytest.raises(TypeError, match="name"):
        load_dataset(3)


@pytest.mark.parametrize("name", ["", "  "])
def test_empty_name(no_sources: Path, name: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        load_dataset(name)
    find_error(excinfo, "dataset name is empty; give one of ml-100k, ml-1m", "gowalla", "or a path")


def test_not_found_fix_speaks_to_cli_and_python(no_sources: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as excinfo:
        load_dataset("ml-1m", download=False)
    message = find_error(excinfo, "allow downloads (drop --no-download, or pass download=True)")
    assert "allow the download" not in message


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(D.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert D.default_cache_dir() == tmp_path / "lightgcn_sparse"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert D.default_cache_dir() == Path.home() / ".cache" / "lightgcn_sparse"
    monkeypatch.setenv(D.CACHE_ENV, str(tmp_path / "x"))
    assert D.default_cache_dir() == tmp_path / "x"
