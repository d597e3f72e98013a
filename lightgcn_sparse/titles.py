"""Movie-title matching: normalize MovieLens titles and resolve what a user typed to a row.

MovieLens writes titles as ``"Godfather, The (1972)"`` or ``"Amelie (Fabuleux destin
d'Amélie Poulain, Le) (2001)"``. :func:`normalize_title` maps those and what people type
(``"the godfather"``, ``"Amélie"``) to one comparable form.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

__all__ = [
    "ARTICLES",
    "AmbiguousTitle",
    "NoMatch",
    "closest_titles",
    "match_titles",
    "normalize_title",
    "resolve_title",
    "split_title",
]

#: Articles that MovieLens moves to the end of a title (en, fr, es, de, it).
ARTICLES = (
    "the", "a", "an",
    "le", "la", "les", "l'", "un", "une",
    "el", "los", "las", "una",
    "der", "die", "das", "ein", "eine",
    "il", "lo", "gli",
)  # fmt: skip

#: A trailing ``(1995)`` (or a range ``(2006-2007)``); group ``year`` is the first year.
YEAR_SUFFIX = r"\s*\((?P<year>\d{4})(?:\s*[-\u2013]\s*(?:\d{4})?)?\s*\)\s*$"
_YEAR_RE = re.compile(YEAR_SUFFIX)
_ARTICLE_RE = re.compile(
    r"^(?P<body>.+?),\s*(?P<article>"
    + "|".join(re.escape(a) for a in sorted(ARTICLES, key=len, reverse=True))
    + r")$",
    re.IGNORECASE,
)
_PIECES_RE = re.compile(r"([()])")
_NON_WORD_RE = re.compile(r"[\W_]+")


def split_title(raw: str) -> tuple[str, int | None]:
    """Split ``"Toy Story (1995)"`` into ``("Toy Story", 1995)``; no year gives ``None``."""
    if not isinstance(raw, str):
        raise TypeError(f"raw must be a str, got {type(raw).__name__}: {raw!r}")
    match = _YEAR_RE.search(raw)
    if match is None or not raw[: match.start()].strip():
        return raw.strip(), None
    return raw[: match.start()].strip(), int(match.group("year"))


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _front_article(piece: str) -> str:
    """``"Godfather, The"`` -> ``"The Godfather"``; ``"Ami, L'"`` -> ``"L'Ami"``."""
    match = _ARTICLE_RE.match(piece.strip())
    if match is None:
        return piece
    article, body = match.group("article"), match.group("body")
    return f"{article}{body}" if article.endswith("'") else f"{article} {body}"


@lru_cache(maxsize=1 << 17)
def _normalize(text: str) -> str:
    text = _strip_accents(text).replace("\u2019", "'")
    title, _ = split_title(text)
    # Move trailing articles inside every segment: the main title and each "(...)" alias.
    pieces = [p if p in "()" else _front_article(p) for p in _PIECES_RE.split(title)]
    text = "".join(pieces).casefold()
    return " ".join(_NON_WORD_RE.sub(" ", text).split())


def normalize_title(s: str) -> str:
    """Comparable form of a title: accents, case, punctuation and a trailing year removed,
    trailing articles moved to the front.

    ``"Godfather, The (1972)"`` -> ``"the godfather"``;
    ``"Amelie (Fabuleux destin d'Amélie Poulain, Le)"`` ->
    ``"amelie le fabuleux destin d amelie poulain"``.
    """
    if not isinstance(s, str):
        raise TypeError(f"s must be a str, got {type(s).__name__}: {s!r}")
    return _normalize(s)


_BARE_ARTICLES = frozenset(a.rstrip("'") for a in ARTICLES)


def _drop_article(norm: str) -> str:
    """``"the godfather"`` -> ``"godfather"`` (normalized text; a lone article stays)."""
    first, _, rest = norm.partition(" ")
    return rest if rest and first in _BARE_ARTICLES else norm


def _aliases(title: str) -> set[str]:
    """The main title and each parenthesised alternative title, normalized."""
    stripped, _ = split_title(_strip_accents(title))
    out = set()
    depth, main, current, inner = 0, [], [], []
    for ch in stripped:
        if ch == "(":
            depth += 1
            if depth == 1:
                current = []
                continue
        elif ch == ")" and depth:
            depth -= 1
            if depth == 0:
                inner.append("".join(current))
                continue
        (current if depth else main).append(ch)
    for text in ["".join(main), *inner]:
        norm = _normalize(text)
        if norm:
            out.add(norm)
    return out


def _as_titles(titles: Sequence[Any]) -> list[str]:
    if isinstance(titles, str):
        raise TypeError("titles must be a sequence of str, not a single str")
    return [t if isinstance(t, str) else "" for t in list(titles)]


def _year_of(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        year = int(value)
    except (TypeError, ValueError, OverflowError):  # NaN, pd.NA, text
        return None
    return year


def _title_years(titles: list[str], years: Sequence[Any] | None) -> list[int | None]:
    if years is None:
        return [split_title(t)[1] for t in titles]
    years = list(years)
    if len(years) != len(titles):
        raise ValueError(
            f"years must have one entry per title: got {len(years)} years for {len(titles)} titles"
        )
    out = []
    for value, title in zip(years, titles):
        year = _year_of(value)
        out.append(year if year is not None else split_title(title)[1])
    return out


def _parse_query(query: str) -> tuple[str, int | None]:
    if not isinstance(query, str):
        raise TypeError(f"query must be a str, got {type(query).__name__}: {query!r}")
    stripped, year = split_title(query)
    return normalize_title(stripped), year


def match_titles(
    query: str, titles: Sequence[str], years: Sequence[Any] | None = None
) -> list[int]:
    """Indices of ``titles`` whose normalized form equals the normalized ``query``.

    A year in the query (``"Heat (1995)"``) keeps only titles of that year; ``years``
    (one per title, missing values allowed) supplies years when the titles carry none.
    Full titles are compared first; if none match, each title's main part and its
    parenthesised alternatives (``"Se7en"`` finds ``"Seven (Se7en)"``); if still none,
    the same without a leading article (``"Godfather"`` finds ``"Godfather, The"``).
    Several indices mean the query is ambiguous.
    """
    norm, year = _parse_query(query)
    titles = _as_titles(titles)
    title_years = _title_years(titles, years)
    if not norm:
        return []

    def keep(i: int) -> bool:
        return year is None or title_years[i] == year

    exact = [i for i, t in enumerate(titles) if keep(i) and _normalize(t) == norm]
    if exact:
        return exact
    alias = [i for i, t in enumerate(titles) if keep(i) and norm in _aliases(t)]
    if alias:
        return alias
    bare = _drop_article(norm)
    return [
        i
        for i, t in enumerate(titles)
        if keep(i) and bare in {_drop_article(a) for a in _aliases(t)}
    ]


def closest_titles(query: str, titles: Sequence[str], n: int = 5) -> list[int]:
    """Up to ``n`` indices of titles resembling ``query``: titles containing it first
    (shortest first), then :func:`difflib.get_close_matches` on normalized titles."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int in [1, inf). Got {n!r} instead.")
    norm, _ = _parse_query(query)
    titles = _as_titles(titles)
    if not norm:
        return []
    normalized = [_normalize(t) for t in titles]
    by_norm: dict[str, list[int]] = {}
    for i, t in enumerate(normalized):
        by_norm.setdefault(t, []).append(i)
    contains = sorted(
        (i for i, t in enumerate(normalized) if norm in t), key=lambda i: (len(normalized[i]), i)
    )
    out = contains[:n]
    if len(out) < n:
        close = difflib.get_close_matches(norm, list(by_norm), n=n, cutoff=0.6)
        for text in close:
            for i in by_norm[text]:
                if i not in out:
                    out.append(i)
    return out[:n]


def _display(i: int, titles: list[str], title_years: list[int | None]) -> str:
    title, year = titles[i], title_years[i]
    if year is not None and split_title(title)[1] is None:
        return f"{title} ({year})"
    return title


class NoMatch(ValueError):
    """No title (or id) matches what was asked for; the message suggests close ones."""


class AmbiguousTitle(ValueError):
    """Several titles match; ``matches`` holds their indices."""

    def __init__(self, message: str, matches: list[int]) -> None:
        super().__init__(message)
        self.matches = matches


def resolve_title(
    query: str,
    titles: Sequence[str],
    years: Sequence[Any] | None = None,
    ids: Sequence[Any] | None = None,
    noun: str = "movie",
) -> int:
    """The index of the one title matching ``query``.

    Args:
        ids: the raw id of each title, shown in messages (default: none shown).
        noun: what the titles name, for messages.

    Raises:
        AmbiguousTitle: several titles match. The message lists them with their years and
            ids: a year narrows the query (``"Title (1995)"``), an id picks one whose title
            and year are the same as another's.
        NoMatch: none matches; the message suggests the closest titles.
    """
    matches = match_titles(query, titles, years)
    if len(matches) == 1:
        return matches[0]
    titles = _as_titles(titles)
    title_years = _title_years(titles, years)

    def shown(i: int) -> str:
        tag = f"[id {ids[i]}] " if ids is not None else ""
        return f"{tag}{_display(i, titles, title_years)}"

    if matches:
        listed = "; ".join(shown(i) for i in matches[:10])
        more = f" (and {len(matches) - 10} more)" if len(matches) > 10 else ""
        hint = "add the year to tell them apart, e.g. 'Title (1995)'"
        if ids is not None:
            hint += f", or give the id, e.g. 'id:{ids[matches[0]]}'"
        raise AmbiguousTitle(f"{query!r} matches several {noun}s: {listed}{more}; {hint}.",
                             matches)  # fmt: skip
    norm = _parse_query(query)[0]
    containing = [i for i, t in enumerate(titles) if norm and norm in _normalize(t)]
    if len(containing) > 1:  # a part of several titles ("Star Trek")
        listed = ", ".join(repr(_display(i, titles, title_years)) for i in containing[:10])
        more = f" (and {len(containing) - 10} more)" if len(containing) > 10 else ""
        raise AmbiguousTitle(
            f"No {noun} is titled {query!r}, but {len(containing)} {noun}s have it in their "
            f"title: {listed}{more}; give one of them in full.",
            containing,
        )
    suggestions = closest_titles(query, titles, n=5)
    if suggestions:
        listed = ", ".join(repr(_display(i, titles, title_years)) for i in suggestions)
        raise NoMatch(f"No {noun} matches {query!r}. Did you mean: {listed}?")
    raise NoMatch(f"No {noun} matches {query!r}.")
