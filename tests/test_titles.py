"""Tests for lightgcn_sparse.titles."""

from __future__ import annotations

import pandas as pd
import pytest

from lightgcn_sparse.titles import (
    AmbiguousTitle,
    closest_titles,
    match_titles,
    normalize_title,
    resolve_title,
    split_title,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Godfather, The (1972)", "the godfather"),
        ("Ciudad, La", "la ciudad"),
        ("Boot, Das (1981)", "das boot"),
        ("Beautiful Mind, A (2001)", "a beautiful mind"),
        ("Ami de mon amie, L' (1987)", "l ami de mon amie"),
        ("L'Ami de mon amie", "l ami de mon amie"),
        (
            "Amelie (Fabuleux destin d'Amélie Poulain, Le) (2001)",
            "amelie le fabuleux destin d amelie poulain",
        ),
        (
            "Double vie de Véronique, La (Double Life of Veronique, The) (1991)",
            "la double vie de veronique the double life of veronique",
        ),
        ("Crouching Tiger, Hidden Dragon (2000)", "crouching tiger hidden dragon"),
        ("Star Wars: Episode IV - A New Hope (1977)", "star wars episode iv a new hope"),
        ("(500) Days of Summer (2009)", "500 days of summer"),
        ("Á köldum klaka", "a koldum klaka"),
        ("STAR   WARS!", "star wars"),
        ("Stranger Things (2016–2017)", "stranger things"),
        ("1984 (1984)", "1984"),
    ],
)
def test_normalize_title(raw: str, expected: str) -> None:
    assert normalize_title(raw) == expected


def test_normalize_title_type_error() -> None:
    with pytest.raises(TypeError, match="s must be a str"):
        normalize_title(None)  # type: ignore[arg-type]


def test_split_title() -> None:
    assert split_title("Toy Story (1995) ") == ("Toy Story", 1995)
    assert split_title("Babylon 5") == ("Babylon 5", None)
    assert split_title("(1995)") == ("(1995)", None)


TITLES = [
    "Heat (1995)",
    "Heat (1986)",
    "Godfather, The (1972)",
    "Godfather: Part II, The (1974)",
    "Seven (Se7en) (1995)",
    "Star Wars (1977)",
    "Misérables, Les (1995)",
]


def test_match_exact_and_ambiguous() -> None:
    assert match_titles("the godfather", TITLES) == [2]
    assert match_titles("Heat", TITLES) == [0, 1]
    assert match_titles("Heat (1986)", TITLES) == [1]
    assert match_titles("Heat (2001)", TITLES) == []
    assert match_titles("   ", TITLES) == []


def test_match_aliases_and_missing_article() -> None:
    assert match_titles("Se7en", TITLES) == [4]
    assert match_titles("Godfather", TITLES) == [2]
    assert match_titles("les miserables", TITLES) == [6]
    assert match_titles("Miserables", TITLES) == [6]


def test_match_with_separate_years() -> None:
    titles = ["Heat", "Heat", "Kolya"]
    years = pd.array([1995, 1986, None], dtype="Int64")
    assert match_titles("Heat (1995)", titles, years) == [0]
    assert match_titles("Kolya", titles, years) == [2]
    with pytest.raises(ValueError, match="one entry per title"):
        match_titles("Heat", titles, [1995])


def test_closest_titles() -> None:
    assert closest_titles("Godfather", TITLES, n=2) == [2, 3]  # substring matches first
    assert closest_titles("Star Warz", TITLES)[0] == 5  # then difflib
    assert closest_titles("zzzzzz", TITLES) == []
    with pytest.raises(ValueError, match="n must be"):
        closest_titles("Heat", TITLES, n=0)


def test_resolve_title() -> None:
    assert resolve_title("star wars", TITLES) == 5
    assert resolve_title("Heat (1995)", TITLES) == 0
    with pytest.raises(AmbiguousTitle, match=r"'Heat' matches several movies: Heat \(1995\); "
                       r"Heat \(1986\); add the year") as excinfo:
        resolve_title("Heat", TITLES)
    assert excinfo.value.matches == [0, 1]
    # With raw ids, the message shows them and offers them (same title and year: only an id
    # tells the two apart).
    with pytest.raises(AmbiguousTitle, match=r"\[id 17\] Emma \(1996\); \[id 42\] Emma "
                       r"\(1996\); add the year .*, or give the id, e.g. 'id:17'"):
        resolve_title("Emma (1996)", ["Emma (1996)", "Emma (1996)"], ids=[17, 42])
    with pytest.raises(ValueError, match=r"No movie matches 'Star Warz'\. Did you mean: 'Star"):
        resolve_title("Star Warz", TITLES)
    with pytest.raises(ValueError, match=r"^No movie matches 'qqqq'\.$"):
        resolve_title("qqqq", TITLES)
    # A part of several titles is reported as such, not as matching none.
    trek = ["Star Trek: Generations (1994)", "Star Trek: First Contact (1996)", *TITLES]
    with pytest.raises(AmbiguousTitle, match=r"No movie is titled 'Star Trek', but 2 movies "
                       r"have it in their title: 'Star Trek: Generations \(1994\)', 'Star Trek: "
                       r"First Contact \(1996\)'; give one of them in full\.") as excinfo:
        resolve_title("Star Trek", trek)
    assert excinfo.value.matches == [0, 1]


def test_resolve_title_shows_separate_years() -> None:
    with pytest.raises(ValueError, match=r"Heat \(1995\); Heat \(1986\)"):
        resolve_title("Heat", ["Heat", "Heat"], [1995, 1986])


def test_titles_must_be_a_sequence() -> None:
    with pytest.raises(TypeError, match="titles must be a sequence"):
        match_titles("Heat", "Heat (1995)")
    with pytest.raises(TypeError, match="query must be a str"):
        match_titles(3, TITLES)  # type: ignore[arg-type]
    assert match_titles("Heat", [None, float("nan"), "Heat"]) == [2]
