"""Tests for lightgcn_sparse.data.formats.benchmark: the LightGCN / NGCF train.txt + test.txt
layout, on small files the tests write and on the real Gowalla split when it is present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_data_common import benchmark_dir, find_error

from lightgcn_sparse.data import (
    DataFileError,
    detect_format,
    load_benchmark,
    load_dataset,
    load_directory,
)

#: The real split, next to the repository (never copied into it).
GOWALLA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "gowalla"


def test_ids_kept_and_catalogue_spans_all_files(tmp_path: Path) -> None:
    data = load_benchmark(benchmark_dir(tmp_path))
    assert (data.num_users, data.num_items, data.num_interactions) == (4, 5, 9)
    assert data.user_ids.tolist() == [0, 1, 2, 3] and data.item_ids.tolist() == [0, 1, 2, 3, 4]
    assert data.user_ids.dtype.kind == "i" and data.item_ids.dtype.kind == "i"
    assert data.users.tolist() == [0, 0, 1, 1, 1, 0, 1, 3, 3]
    assert data.items.tolist() == [1, 2, 0, 1, 3, 3, 2, 4, 0]
    assert data.parts.dtype == np.int8 and data.parts.tolist() == [0] * 5 + [2] * 4
    assert data.ratings is None and data.timestamps is None and data.items_meta is None
    assert data.name == "bench"


def test_valid_file_is_part_one(tmp_path: Path) -> None:
    data = load_benchmark(benchmark_dir(tmp_path, valid="2 5\n"))
    assert data.num_items == 6 and np.bincount(data.parts).tolist() == [5, 1, 4]
    assert data.users[data.parts == 1].tolist() == [2]


def test_parts_survive_subset(tmp_path: Path) -> None:
    data = load_benchmark(benchmark_dir(tmp_path))
    part = data.subset(data.users == 3)
    assert part.parts.tolist() == [2, 2] and part.num_users == 4


def test_blank_lines_crlf_and_tabs_are_accepted(tmp_path: Path) -> None:
    directory = benchmark_dir(tmp_path, train="\ufeff0 1\t2\r\n\r\n1 0\r\n", test="0 3\n\n")
    data = load_benchmark(directory)
    assert data.items[data.parts == 0].tolist() == [1, 2, 0]
    assert data.users[data.parts == 2].tolist() == [0]


def test_detected_from_the_folder(tmp_path: Path) -> None:
    directory = benchmark_dir(tmp_path)
    assert detect_format(directory) == "benchmark"
    assert load_directory(directory).num_interactions == 9
    assert load_dataset(directory).parts is not None


def test_min_rating_needs_ratings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="min_rating=4.0 needs ratings"):
        load_benchmark(benchmark_dir(tmp_path), min_rating=4)


MALFORMED = {
    "non-integer token": ("0 1\n1 x2 3\n", "train.txt: line 2: 'x2' is not an integer id"),
    "decimal id": ("0 1.5\n", "train.txt: line 1: '1.5' is not an integer id"),
    "negative id": ("0 1\n\n2 -3\n", "train.txt: line 3: id -3 is negative"),
    "huge id": ("0 1234567890123456789\n", "line 1: id 1234567890123456789 is too large"),
    "repeated user": ("0 1\n1 2\n0 3\n", "train.txt: line 3: user 0 already has line 1"),
    "empty file": ("", "train.txt: file is empty"),
    "blank file": ("\n \n", "train.txt: has no data rows"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_lines_name_file_and_line(tmp_path: Path, case: str) -> None:
    train, fragment = MALFORMED[case]
    directory = benchmark_dir(tmp_path, train=train)
    with pytest.raises(DataFileError) as excinfo:
        load_benchmark(directory)
    find_error(excinfo, str(directory / "train.txt"), fragment)


def test_missing_test_file(tmp_path: Path) -> None:
    directory = benchmark_dir(tmp_path)
    (directory / "test.txt").unlink()
    with pytest.raises(FileNotFoundError, match="test.txt: file not found"):
        load_benchmark(directory)


def test_no_interactions_at_all(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="hold no interactions"):
        load_benchmark(benchmark_dir(tmp_path, train="0\n1\n", test="2\n"))


def test_real_gowalla() -> None:
    if not GOWALLA.is_dir():
        pytest.skip(f"the Gowalla split is not at {GOWALLA}")
    for data in (load_dataset(GOWALLA), load_dataset("gowalla", data_dir=GOWALLA.parent)):
        counts = np.bincount(data.parts, minlength=3)
        assert (data.num_users, data.num_items) == (29858, 40981)
        assert (counts[0], counts[2]) == (810128, 217242) and counts[1] == 0
        assert data.name == "gowalla" and data.format == "benchmark"
