"""What a person types, resolved to user and item indices, and items shown back to them.

Items are named by raw id (``2366``, ``sku-9``: matched exactly, so ``SKU-1`` and ``sku-1``
are different items) or, where the data has titles, by title (matched as
:mod:`lightgcn_sparse.titles` describes). ``id:2366`` forces the id reading when a title
could also match. Data without titles is spoken of as items, data with titles as movies.
"""

from __future__ import annotations

import difflib

import numpy as np
import pandas as pd

from .data import InteractionTable
from .idmap import UnknownIdError
from .titles import NoMatch, resolve_title

__all__ = ["describe_items", "find_item", "find_user", "item_label", "item_noun"]


def item_noun(data: InteractionTable) -> str:
    """``"movie"`` when the data has titles, else ``"item"``."""
    return "movie" if data.items_meta is not None else "item"


def find_user(data: InteractionTable, text: str) -> int:
    """The index of the user whose raw id is ``text``."""
    return data.user_map.index(text)


def find_item(data: InteractionTable, text: str) -> int:
    """The index of the item named by ``text``: ``id:<raw id>``, a raw id, or a title.

    A text that is both an item's raw id and matches a title is taken as the id only when
    no title matches; otherwise the ambiguity is reported (use ``id:`` or the title's year).
    """
    if text.startswith("id:"):
        return data.item_map.index(text[3:].strip())
    by_id = None
    try:
        by_id = data.item_map.index(text)
    except UnknownIdError:
        pass
    if data.items_meta is None:
        if by_id is not None:
            return by_id
        close = difflib.get_close_matches(text, [str(i) for i in data.item_ids], n=5)
        hint = f" Did you mean: {', '.join(repr(c) for c in close)}?" if close else ""
        raise NoMatch(f"No item has the id {text!r} (ids are matched exactly).{hint}")
    titles = data.items_meta["title"].astype(str).tolist()
    years = data.items_meta["year"].tolist()
    try:
        found = resolve_title(text, titles, years, ids=data.item_ids, noun="movie")
    except NoMatch:
        if by_id is not None:
            return by_id
        raise
    if by_id is not None and by_id != found:
        raise NoMatch(
            f"{text!r} is the id of {item_label(data, by_id)!r} and the title of "
            f"{item_label(data, found)!r}; write 'id:{text}' for the first."
        )
    return found


def item_label(data: InteractionTable, item: int) -> str:
    """'Title (year)' of an item index, or its raw id without metadata."""
    if data.items_meta is None:
        return str(data.item_ids[item])
    row = data.items_meta.iloc[item]
    return f"{row['title']} ({row['year']})" if pd.notna(row["year"]) else str(row["title"])


def describe_items(data: InteractionTable, ids: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """A table of ranked items: raw id, title, year, genres (when known) and score."""
    frame = pd.DataFrame({"item": np.asarray(data.item_ids)[ids], "score": scores})
    if data.items_meta is not None:
        meta = data.items_meta.iloc[ids].reset_index(drop=True)
        frame = pd.concat(
            [frame[["item"]], meta[["title", "year", "genres"]], frame[["score"]]], axis=1
        )
    frame.index = pd.RangeIndex(1, len(frame) + 1, name="rank")
    return frame


