"""Tests for lightgcn_sparse.data.table: the InteractionTable container."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp
from test_data_common import find_error

from lightgcn_sparse.data import (
    Interactions,
    UnknownIdError,
)

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


def test_stats() -> None:
    stats = small().stats()
    assert stats["users"] == 3 and stats["items"] == 4 and stats["interactions"] == 5
    assert stats["unique_pairs"] == 4 and stats["density"] == pytest.approx(4 / 12)
    assert (stats["rating_min"], stats["rating_max"]) == (1.0, 5.0)
    assert (stats["timestamp_min"], stats["timestamp_max"]) == (1, 5)
    assert stats["interactions_per_user"] == {"min": 0, "median": 2.0, "max": 3}
    assert stats["parts"] is None and stats["source"] == []


def test_describe_is_flat_and_formatted() -> None:
    data = dataclasses.replace(
        small(), source=("/d/u.data", "/d/u.item"), format="ml-100k", parts=[0, 0, 0, 1, 2]
    )
    assert data.describe() == {
        "name": "small",
        "format": "ml-100k",
        "read": "u.data, u.item from /d",
        "users": 3,
        "items": 4,
        "interactions": 5,
        "unique (user, item) pairs": 4,
        "density": "33.3 %",
        "interactions per user (min / median / max)": "0 / 2 / 3",
        "interactions per item (min / median / max)": "0 / 1 / 3",
        "ratings (min / mean / max)": "1 / 3 / 5",
        "time span (UTC)": "1970-01-01 to 1970-01-01",
        "parts in the files (train / valid / test)": "3 / 1 / 1",
        "item metadata": "none",
    }
    for value in data.describe().values():
        assert isinstance(value, (str, int))


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


def test_parts_are_checked_and_kept_by_subset() -> None:
    base = dict(num_users=2, num_items=2, user_ids=np.arange(2), item_ids=np.arange(2))
    data = Interactions(users=np.array([0, 1]), items=np.array([1, 0]), parts=[0, 2], **base)
    assert data.parts.dtype == np.int8 and data.subset([1]).parts.tolist() == [2]
    assert small().parts is None and small().subset([0]).parts is None
    with pytest.raises(ValueError, match=r"parts must hold 0 \(train\), 1 \(valid\) or 2"):
        Interactions(users=np.array([0]), items=np.array([0]), parts=[3], **base)
    with pytest.raises(ValueError, match="parts must have shape"):
        Interactions(users=np.array([0]), items=np.array([0]), parts=[0, 0], **base)
