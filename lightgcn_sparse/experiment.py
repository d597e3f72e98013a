"""End-to-end workflow on a dataset: load, split, train, evaluate against a baseline.

This is the public API the CLI is a thin layer over; everything here is usable from Python.

Three evaluation protocols (:data:`PROTOCOLS`):

* ``"honest"`` (the default): early stopping and the kept epoch are chosen on validation
  data (the split's valid part; for a benchmark folder without ``valid.txt``, a seeded
  ``valid_fraction`` of each user's training interactions); test is looked at once, at the
  end.
* ``"refit"``: honest too, with nothing held out of the final model. Validation chooses
  the number of epochs as under ``"honest"``; then a fresh model (same config and seed)
  trains on train + valid for exactly that many epochs, and test is looked at once. The
  choice is recorded in the model's ``config.extra["refit"]``.
* ``"paper"``: what the LightGCN paper and its reference code report. The model trains on
  all of train (validation interactions folded back in), test is evaluated every
  ``eval_every`` epochs and the best test point is kept and reported. The test data choose
  the epoch, so the figure is optimistic; every output says which protocol produced it.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from ._checks import InvalidValue, check_choice, check_float
from .baseline import Popularity
from .checkpoint import CheckpointError
from .config import Config
from .data import InteractionTable, Split, default_split, load_dataset, split_interactions
from .data.splits import fold_validation_into_train
from .idmap import IdMap
from .model import LightGCN
from .persistence import fingerprint
from .recommender import FactorRecommender
from .resume import read_config
from .user_items import user_items_from_csr

PROTOCOLS = ("honest", "refit", "paper")
#: Protocols whose reported model trains on train + valid.
FOLDED = ("refit", "paper")
#: DataSpec fields that decide the split: evaluation must use the recorded values.
SPLIT_FIELDS = ("min_rating", "split", "split_seed", "valid_fraction", "protocol")


@dataclass
class DataSpec:
    """How the interactions and their split were made; saved in the model's config.extra."""

    dataset: str = "ml-100k"  # a name from lightgcn_sparse.data.DATASETS, or a path
    data_dir: Optional[str] = None  # explicit folder holding the files
    min_rating: Optional[float] = None  # keep ratings >= this ("liked"); None keeps all
    split: Optional[str] = None  # a method of split_interactions; None: the data's default
    split_seed: int = 2020  # seed of the split (independent of the training seed)
    valid_fraction: float = 0.1  # split "given" without valid.txt: share of train held out
    protocol: str = "honest"  # "honest"/"refit" (validation picks the epoch), "paper" (test)

    def __post_init__(self) -> None:
        check_choice("protocol", self.protocol, PROTOCOLS)
        check_float("valid_fraction", self.valid_fraction, low=0.0, high=0.9)

    def load(self, download: bool = True) -> tuple[InteractionTable, Split]:
        """The data and its split under this protocol."""
        data = load_dataset(
            self.dataset, self.data_dir, download=download, min_rating=self.min_rating
        )
        return data, self.split_of(data)

    def split_of(self, data: InteractionTable) -> Split:
        method = self.split or default_split(data)
        paper = self.protocol == "paper"
        if method == "given":
            has_valid = data.parts is not None and bool((data.parts == 1).any())
            fraction = None if has_valid else (0.0 if paper else self.valid_fraction)
            split = split_interactions(data, method, seed=self.split_seed, valid_fraction=fraction)
        else:
            split = split_interactions(data, method, seed=self.split_seed)
        return fold_validation_into_train(split) if paper else split

    def final_split(self, split: Split) -> Split:
        """The parts the reported model trains on: valid folded into train where the
        protocol says so (``"refit"``, ``"paper"``)."""
        return fold_validation_into_train(split) if self.protocol in FOLDED else split

    def unused_valid_fraction(self, data: Optional[InteractionTable] = None) -> str:
        """Why ``valid_fraction`` plays no part in this spec's split of ``data``, or ``""``
        where it does (it does with split ``"given"``, no validation part in the files and
        a protocol other than ``"paper"``). Without ``data``, only what the spec itself
        shows (an explicit split, the protocol) is known."""
        method = self.split or (default_split(data) if data is not None else None)
        if method is not None and method != "given":
            return f"the {method!r} split holds out its own validation part"
        if self.protocol == "paper":
            return "--protocol paper trains on all of the training part"
        if data is not None and data.parts is not None and bool((data.parts == 1).any()):
            return f"{data.name} ships its own validation part"
        return ""

    def resolved(self, data: InteractionTable) -> DataSpec:
        """This spec with the split method the data defaults to written out."""
        return dataclasses.replace(self, split=self.split or default_split(data))

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> DataSpec:
        """From :meth:`to_dict` (older records lack the newer fields: they take defaults)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in saved.items() if k in names})


def train(
    spec: DataSpec,
    config: Config,
    *,
    show_progress: bool = True,
    checkpoint_path: Optional[Union[str, Path]] = None,
    checkpoint_every: int = 0,
    resume: Optional[Union[str, Path]] = None,
    data: Optional[tuple[InteractionTable, Split]] = None,
    strategy: Any = None,
    callback: Any = None,
) -> tuple[LightGCN, InteractionTable, Split]:
    """Load and split ``spec``'s data and fit LightGCN under ``spec.protocol``.

    Honest protocol: early stopping on the validation part. Refit: the same, then a fresh
    model on train + valid for the epochs validation chose (one checkpoint file serves both
    phases: resuming a refit-phase checkpoint skips the choice). Paper protocol: the test
    part is evaluated every ``config.eval_every`` epochs and its best point kept (no early
    stop unless ``config.patience`` is set). ``data`` reuses an already loaded
    ``(table, split)``; ``strategy`` is passed to :meth:`LightGCN.fit`. Returns the model,
    the data and the split the model was trained on.
    """
    table, split = data if data is not None else spec.load()
    spec = spec.resolved(table)
    config = config.replace(extra={**config.extra, "data": spec.to_dict()})
    fit = dict(
        show_progress=show_progress,
        checkpoint_path=checkpoint_path,
        checkpoint_every=checkpoint_every,
        strategy=strategy,
        user_ids=table.user_ids,
        item_ids=table.item_ids,
        callback=callback,
    )
    if spec.protocol == "refit":
        config, resume = _choose_epochs(config, split, resume, fit)
        split = spec.final_split(split)
    watched = split.test if spec.protocol == "paper" else split.valid
    model = LightGCN(config)
    model.dataset = table.name or str(spec.dataset)
    model.fit(
        split.train.to_csr(),
        watched.to_csr() if watched.num_interactions else None,
        resume=resume,
        **fit,
    )
    return model, table, split


def _choose_epochs(config: Config, split: Split, resume, fit: dict) -> tuple[Config, Any]:
    """The refit protocol's first phase: ``config`` with ``epochs`` set to the count that
    validation chose and ``extra["refit"]`` recording the choice, and the checkpoint the
    refit phase resumes from (``None``: it starts afresh).

    A ``resume`` checkpoint written in the refit phase already records the choice: nothing
    is trained, and the refit phase resumes from it.
    """
    recorded = _recorded_choice(resume) if resume is not None else None
    if recorded is not None:
        choice = recorded
    else:
        if not split.valid.num_interactions:
            raise InvalidValue(
                "protocol",
                "'refit' chooses the epochs on validation data, and this split has none "
                "(give a --valid-fraction above 0, or use --protocol paper).",
            )
        chooser = LightGCN(config)
        chooser.fit(split.train.to_csr(), split.valid.to_csr(), resume=resume, **fit)
        metric = config.metric
        curve = [[r["epoch"], r[metric]] for r in chooser.history_ if metric in r]
        score = dict(curve).get(chooser.best_epoch_)
        choice = {
            "epochs": chooser.best_epoch_,
            "metric": metric,
            "validation_score": score,
            "epochs_run": len(chooser.history_),
            "validation_curve": curve,
        }
        if fit["show_progress"]:
            print(
                f"validation chose epoch {choice['epochs']} of {choice['epochs_run']} "
                f"({metric} {score:.4f}); refitting on train + valid for that many epochs",
                file=sys.stderr,
            )
    refit = config.replace(epochs=choice["epochs"], extra={**config.extra, "refit": choice})
    return refit, resume if recorded is not None else None


def _recorded_choice(path) -> Optional[dict[str, Any]]:
    """The refit choice a checkpoint of the refit phase records (``None`` for another)."""
    extra = read_config(path).get("extra") or {}
    return extra.get("refit")


def seen_in_training(split: Split):
    """Train + valid interactions: excluded from the test ranking."""
    return (split.train.to_csr() + split.valid.to_csr()).tocsr()


def evaluate_test(model: FactorRecommender, split: Split, ks=(10, 20)) -> dict[str, float]:
    """Full-ranking test metrics of any model, train and valid items excluded."""
    return model.evaluate(split.test.to_csr(), exclude=seen_in_training(split), ks=ks)


def popularity_metrics(split: Split, ks=(10, 20), device: str = "cpu") -> dict[str, float]:
    """The :class:`~lightgcn_sparse.baseline.Popularity` baseline, fitted on train, under
    the same protocol as :func:`evaluate_test`."""
    return evaluate_test(Popularity(device).fit(split.train.to_csr()), split, ks)


def protocol_note(spec: DataSpec, model: LightGCN) -> str:
    """One line saying how the reported epoch was chosen."""
    every = model.config.eval_every
    ran = len(model.history_)
    choice = model.config.extra.get("refit")
    if spec.protocol == "refit" and choice:
        return (
            f"test once, after refitting on train + valid for {choice['epochs']} epochs, the "
            f"count validation chose ({choice['metric']} {choice['validation_score']:.4f}; "
            f"{choice['epochs_run']} epochs run to choose it; refit protocol)"
        )
    if spec.protocol == "paper":
        return (
            f"best test point along the run: epoch {model.best_epoch_} of {ran}, test every "
            f"{every} epoch(s) (paper protocol: the test data chose the epoch)"
        )
    if any("improved" in r for r in model.history_):
        return (
            f"test at the epoch chosen on validation: epoch {model.best_epoch_} of {ran} "
            "(honest protocol)"
        )
    return f"test after the last epoch, {ran} (no validation data: nothing chose the epoch)"


def load_model_and_data(
    model_path: Union[str, Path],
    overrides: Optional[dict[str, Any]] = None,
    download: bool = True,
) -> tuple[LightGCN, InteractionTable, Split, DataSpec]:
    """Load a saved model and the data and split it was trained on.

    ``overrides`` replaces fields of the recorded :class:`DataSpec` (``None`` values are
    ignored). The split is re-derived and checked: its training part must be exactly the
    interactions the model was trained on, otherwise evaluating would leak training data
    into "test" (or score a different test set), and :class:`CheckpointError` says so.
    """
    model = LightGCN.load(model_path)
    where = repr(str(model_path))
    saved = model.config.extra.get("data")
    changes = {k: v for k, v in (overrides or {}).items() if v is not None}
    if not saved and "dataset" not in changes:
        raise CheckpointError(f"{where} does not record its dataset; pass --dataset.")
    spec = DataSpec.from_dict({**(saved or {}), **changes})
    recorded = DataSpec.from_dict(saved) if saved else None
    data, split = spec.load(download=download)
    check_same_catalogue(model, data, model_path)
    if recorded is not None:
        recorded = recorded.resolved(data)
        # valid_fraction only matters where the split uses it: given elsewhere, it differs
        # from the recorded value without making another split
        fields = [k for k in SPLIT_FIELDS
                  if k != "valid_fraction" or not spec.unused_valid_fraction(data)]  # fmt: skip
        differ = [
            f"{k}={getattr(spec.resolved(data), k)!r} (trained with {getattr(recorded, k)!r})"
            for k in fields
            if getattr(spec.resolved(data), k) != getattr(recorded, k)
        ]
        if differ:
            raise CheckpointError(
                f"{where} was trained on another split: {', '.join(differ)}. Its test part "
                "would not be the model's test data (and could hold its training "
                "interactions); omit these options to use the recorded ones."
            )
    split = spec.final_split(split)  # the parts the model was trained and is evaluated on
    if fingerprint(user_items_from_csr(split.train.to_csr())) != model.fingerprint_:
        raise CheckpointError(
            f"{where} was not trained on the training part of this data: the interactions "
            "differ from the ones it was trained with (another copy or version of the "
            "dataset?). Evaluate with the data the model was trained with."
        )
    return model, data, split, spec


def check_same_catalogue(model: FactorRecommender, data: InteractionTable, model_path) -> None:
    same = (model.trained_users_, model.trained_items_) == (data.num_users, data.num_items)
    if same:
        same = model.item_map == IdMap(data.item_ids) and model.user_map == IdMap(data.user_ids)
    if not same:
        raise CheckpointError(
            f"{str(model_path)!r} was trained on another dataset ({model.dataset!r}: "
            f"{model.num_users} users x {model.num_items} items); the data given has "
            f"{data.num_users} users x {data.num_items} items ({data.name!r})."
        )


def check_cutoffs(ks, num_items: int, name: str = "ks") -> tuple[int, ...]:
    """``ks`` sorted and checked against the catalogue (``InvalidValue`` naming ``name``)."""
    ks = tuple(sorted(set(ks)))
    if ks and max(ks) > num_items:
        raise InvalidValue(
            name, f"cutoff {max(ks)} is larger than the catalogue ({num_items} items)."
        )
    return ks
