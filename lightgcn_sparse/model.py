r"""The LightGCN recommender: parameters, propagation, scoring, fold-in and persistence.

He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
Recommendation", SIGIR 2020, https://arxiv.org/abs/2002.02126.

.. math::
    E^{(k+1)} = \hat A E^{(k)}, \qquad E = \sum_{k=0}^{K} \alpha_k E^{(k)}, \qquad
    \hat y_{ui} = \langle e_u, e_i \rangle

with :math:`\hat A = D^{-1/2} A D^{-1/2}` of the user-item bipartite graph. The layer-0
embeddings :math:`E^{(0)}` are the only trained parameters.

LightGCN++ (Lee et al., "Revisiting LightGCN: Unexpected Inflexibility, Inconsistency, and
A Remedy Towards Improved Recommendation", RecSys 2024,
https://doi.org/10.1145/3640457.3688176) is this model with ``Config.norm_left`` (a),
``Config.norm_right`` (b) and ``Config.layer_norm`` set (``preset("lightgcnpp")``):

.. math::
    e_u^{(k+1)} = \sum_{i \in N_u} \frac{1}{|N_u|^{a} |N_i|^{b}}
    \frac{e_i^{(k)}}{\lVert e_i^{(k)} \rVert}, \qquad
    E = \gamma E^{(0)} + \frac{1 - \gamma}{K} \sum_{k=1}^{K} E^{(k)}

(items alike), the last being ``alpha = (gamma, (1-gamma)/K, ...)``. The graph is still
stored once, as :math:`\hat A` (see :mod:`lightgcn_sparse.propagation`).

Training (the loop, early stopping, checkpoints, data parallelism) lives in
:mod:`lightgcn_sparse.trainer`; :meth:`LightGCN.fit` hands the model to a
:class:`~lightgcn_sparse.trainer.Trainer`.

Shapes: ``U`` users, ``I`` items, ``N = U + I`` nodes, ``d`` = ``embedding_dim``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ._checks import check_device
from .adjacency import node_order, normalized_adjacency, permute_adjacency
from .catalogue import NotFittedError, UserItemsLike, training_data
from .checkpoint import (
    CheckpointError,
    atomic_write_npz,
    read_npz,
    require_fields,
    to_json_array,
)
from .config import Config
from .foldin import fold_in, padded
from .idmap import IdMap
from .loss import bpr_loss, bpr_loss_indexed
from .persistence import (
    catalogue_arrays,
    config_field,
    fingerprint,
    float_array,
    read_catalogue,
    summary_array,
    summary_field,
)
from .propagation import DTYPES, Graph, layer_weights, propagate, unique_rows_propagation
from .recommender import FactorRecommender
from .user_items import UserItemIndex

__all__ = ["LightGCN", "NotFittedError", "TrainingDiverged"]


class TrainingDiverged(RuntimeError):
    """The loss or the embeddings became NaN or infinite during training."""


class LightGCN(FactorRecommender):
    """LightGCN trained with BPR, following ``implicit``'s recommender API.

    Args:
        config: a :class:`~lightgcn_sparse.config.Config`; default ``Config()``.
        **overrides: any :class:`Config` field, e.g. ``LightGCN(embedding_dim=32)``.

    Attributes (after :meth:`fit` or :meth:`load`):
        embedding_: (N, d) layer-0 embeddings (the parameters), users first.
        user_factors: (U, d) float32 numpy, final propagated user embeddings.
        item_factors: (I, d) float32 numpy, final propagated item embeddings.
        history_: one dict per epoch (loss, val_loss, validation metrics, lr).
        timings_: one dict per epoch (seconds), kept apart from the results.
        best_epoch_: the epoch whose embeddings were kept (early stopping), or the last.
    """

    kind = "lightgcn"

    def __init__(self, config: Config | None = None, **overrides: Any) -> None:
        if config is not None and not isinstance(config, Config):
            raise TypeError(f"config must be a Config. Got {type(config).__name__}.")
        self.config = (config or Config()).replace(**overrides)
        self.dataset: str = ""  # name of the training data set (e.g. "ml-100k"), saved

    @property
    def device(self) -> torch.device:
        return check_device(self.config.device)

    # ------------------------------------------------------------------ the trainer's side
    def setup(
        self, train: UserItemIndex, user_map: IdMap | None = None, item_map: IdMap | None = None
    ) -> None:
        """Build the graph of ``train`` and draw the layer-0 embeddings from ``config.seed``.

        The embeddings come from a CPU generator, so CPU and CUDA runs start identical.
        """
        cfg = self.config.validate()
        self._set_catalogue(train, user_map, item_map)
        self._build_graph(train)
        gen = torch.Generator().manual_seed(cfg.seed)
        x0 = torch.randn(self.trained_users_ + self.trained_items_, cfg.embedding_dim,
                         generator=gen) * cfg.init_std  # (N, d)  # fmt: skip
        self.embedding_ = torch.nn.Parameter(x0.to(self.device))

    def _build_graph(self, train: UserItemIndex) -> None:
        """The normalized adjacency of ``train``, built once, in ``config.node_order``; with
        LightGCN++'s normalization also its two (N, 1) degree scalings, once."""
        self.fingerprint_ = fingerprint(train)
        adj = normalized_adjacency(
            train.row_ids(), train.indices, train.num_users, train.num_items, device=self.device
        )
        order = node_order(adj, self.config.node_order, max(torch.get_num_threads(), 1))
        self.graph_ = Graph(adj if order is None else permute_adjacency(adj, order), order)
        self.user_degree_ = train.degrees()  # (U,)
        self.item_degree_ = torch.bincount(train.indices, minlength=train.num_items)  # (I,)
        self._final: torch.Tensor | None = None
        cfg = self.config
        if (cfg.norm_left, cfg.norm_right, cfg.layer_norm) != (0.5, 0.5, False):
            # built here, not lazily inside a training step that a CUDA graph captures
            self.graph_.scalings(cfg.norm_left, cfg.norm_right, adj.dtype)

    def parameters(self) -> list[torch.nn.Parameter]:
        """The trained parameters: the layer-0 embeddings."""
        self._check_fitted()
        return [self.embedding_]

    def propagate(self, x0: torch.Tensor | None = None) -> torch.Tensor:
        """(N, d) final embeddings of ``x0`` (default: the current parameters, with grad).

        Plain LightGCN keeps no activations for backward; with ``config.layer_norm`` autograd
        keeps up to K (N, d) of them (see :func:`~lightgcn_sparse.propagation.propagate`).
        """
        self._check_fitted()
        cfg = self.config
        x0 = self.embedding_ if x0 is None else x0
        return propagate(self.graph_, x0, cfg.num_layers, cfg.alpha, kernel=cfg.kernel,
                         dtype=DTYPES[cfg.propagation_dtype], norm_left=cfg.norm_left,
                         norm_right=cfg.norm_right, layer_norm=cfg.layer_norm)  # fmt: skip

    def loss(
        self,
        users: torch.Tensor,
        pos: torch.Tensor,
        neg: torch.Tensor,
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """BPR loss of a batch of triples, differentiable in the parameters.

        Args:
            users, pos, neg: (B,) user and item indices.
            weight: optional (B,) 0/1 mask of the triples that count (see :func:`bpr_loss`).
        """
        self._check_fitted()
        x0, cfg = self.embedding_, self.config
        rows = torch.cat([users, pos + self.trained_users_, neg + self.trained_users_])  # (3B,)
        if weight is not None or self.device.type != "cpu":
            # CUDA (and a CUDA graph's padded batches): fixed shapes, no host sync. F.embedding,
            # not x[rows]: its backward is reproducible (index_put_'s sums are not).
            out, layer0 = F.embedding(rows, self.propagate(x0)), F.embedding(rows, x0)
            eu, ep, en = out.chunk(3)  # (B, d) each
            return bpr_loss(eu, ep, en, layer0.chunk(3), cfg.reg, weight)
        # CPU: the triples' rows are gathered and their gradients summed back without
        # autograd's indexing (bpr_loss_indexed; measured at batch 65,536: F.embedding's
        # forward and backward 23.6 ms; index_select, the sort and one embedding_bag 7.5 ms).
        if self._batch_rows_only():
            unique, index = torch.unique(rows, return_inverse=True)
            weights = layer_weights(cfg.num_layers, cfg.alpha)
            table, layer0 = unique_rows_propagation(self.graph_, x0, unique, weights, cfg.kernel,
                                                    DTYPES[cfg.propagation_dtype])  # fmt: skip
        else:
            index, table, layer0 = rows, self.propagate(x0), x0
        return bpr_loss_indexed(table, index, layer0, cfg.reg)

    def _batch_rows_only(self) -> bool:
        """Whether a step propagates only what the batch's rows need
        (:func:`~lightgcn_sparse.propagation.propagate_rows`): on CPU, for plain LightGCN,
        when a batch's 3B rows are at most half the nodes (measured on Gowalla, steps with
        either path interleaved, float32 / bfloat16: 3B/N 0.09 saves 19 / 30 % of a step,
        0.35 7 / 15 %, 0.69 costs 14 % / saves 5 %; ml-100k at 2.3 cost 30 %: the rows'
        bookkeeping outweighs the products it saves). On CUDA the step
        keeps the full propagation: the rows' count is data-dependent (a host sync per
        step, and no fixed shapes for a CUDA graph)."""
        cfg = self.config
        plain = (cfg.norm_left, cfg.norm_right, cfg.layer_norm) == (0.5, 0.5, False)
        few = 2 * 3 * cfg.batch_size <= self.graph_.num_nodes
        return plain and few and self.device.type == "cpu"

    def parameters_changed(self) -> None:
        """Forget the cached propagation (call after the parameters were updated)."""
        self._final = None

    def divergence(self) -> str:
        """Why the current parameters are unusable, or ``""`` when they are fine.

        Finite layer-0 embeddings are not enough: scores are inner products of propagated
        embeddings, so those must be small enough that no score overflows.
        """
        self._check_fitted()
        if not bool(torch.isfinite(self.embedding_).all()):
            return "the embeddings became NaN or infinite"
        final = self._propagated()  # cached: validation reuses it
        if final.numel():
            peak = float(final.abs().max())
            if peak * peak * final.shape[1] >= torch.finfo(final.dtype).max:
                return f"the embeddings grew to {peak:.3g}, so scores overflow"
        return ""

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        user_items: UserItemsLike | tuple,
        validation: UserItemsLike | None = None,
        *,
        show_progress: bool = True,
        checkpoint_path: str | Path | None = None,
        checkpoint_every: int = 0,
        resume: str | Path | None = None,
        callback: Callable[[dict], None] | None = None,
        strategy: Any = None,
        user_ids: Any = None,
        item_ids: Any = None,
    ) -> LightGCN:
        """Train on ``user_items`` with BPR and Adam; returns ``self``.

        Args:
            user_items: scipy (U, I) sparse matrix of interactions (any positive value counts
                once; negative values are refused), a :class:`UserItemIndex`, a tuple
                ``(users, items)`` / ``(users, items, U, I)`` of index arrays, or a pandas
                DataFrame of raw ids (columns ``user`` and ``item``; the model then maps
                raw ids both ways: :meth:`user_index`, :attr:`item_ids`).
            validation: held-out interactions for early stopping on ``config.metric``
                (already-seen training items are excluded from ranking): the same kind as
                ``user_items``.
            show_progress: print progress to stderr.
            checkpoint_path: where to write training checkpoints (atomically).
            checkpoint_every: write a checkpoint every this many epochs (0: never).
            resume: a checkpoint written by an earlier, interrupted ``fit`` with the same data
                and config; training continues where it stopped, with identical results.
            callback: called with each epoch's history record (or a
                :class:`~lightgcn_sparse.trainer.Callback`).
            strategy: how to execute: ``None`` (this process) or a
                :class:`~lightgcn_sparse.distributed.DataParallel`.
            user_ids, item_ids: raw id of each user / item index (default: the index).

        Raises:
            ValueError, TypeError: bad data, arguments or hyperparameters (named in the
                message); checked before any training step.
            CheckpointError: ``resume`` is not a checkpoint of this data, split and config.
            TrainingDiverged: the loss, the embeddings or Adam's state became NaN or infinite
                (or the scores would overflow). The model keeps the embeddings from the start
                of that epoch, and the last checkpoint is left as it was.

        On CPU the same seed gives bit-identical embeddings, history and metrics (with the
        same number of threads), and so does a resumed run.
        """
        from .trainer import Trainer  # the trainer imports this module

        self.config.validate()
        train, validation, *maps = training_data(
            user_items, validation, self.device, user_ids, item_ids
        )
        trainer = Trainer(
            self,
            strategy,
            show_progress=show_progress,
            checkpoint_path=checkpoint_path,
            checkpoint_every=checkpoint_every,
            callbacks=[callback] if callback is not None else (),
        )
        trainer.fit(train, validation, resume=resume, id_maps=maps)
        return self

    # ------------------------------------------------------------------ factors
    def _propagated(self) -> torch.Tensor:
        """(N, d) final embeddings of the current layer-0 embeddings (cached)."""
        self._check_fitted()
        if self._final is None:
            with torch.no_grad():
                self._final = self.propagate(self.embedding_.detach())
        return self._final

    def _factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        final = self._propagated()
        return final[: self.trained_users_], final[self.trained_users_ :]

    def _fold_in_users(self, liked: UserItemIndex) -> torch.Tensor:
        r"""(n, d) embeddings of users given only their items (no gradient steps).

        One LightGCN propagation step from the final item embeddings, treating each user as
        a new node joined to its liked items :math:`L_u`:

        .. math:: e_u = \sum_{i \in L_u} \frac{1}{\sqrt{|L_u|}\sqrt{|N_i| + 1}}\, e_i

        where :math:`|N_i|` is item ``i``'s training degree (``+1`` counts the new user).
        With LightGCN++'s options (a = ``norm_left``, b = ``norm_right``) the step follows
        the same normalization, and ``layer_norm`` normalizes the item rows first:

        .. math:: e_u = \sum_{i \in L_u} |L_u|^{-a} (|N_i| + 1)^{-b}\,
            \frac{e_i}{\lVert e_i \rVert}
        """
        items = self.factors()[1]  # (I, d)
        degree = padded(self.item_degree_, items.shape[0])
        return fold_in(liked, items, degree, *self._fold_in_norms())

    def _fold_in_items(self, users: UserItemIndex) -> torch.Tensor:
        r"""(m, d) embeddings of items given only their users, mirroring the user fold-in:
        :math:`e_i = \sum_{u \in L_i} e_u / (\sqrt{|L_i|}\sqrt{|N_u| + 1})`; with
        LightGCN++'s options :math:`e_i = \sum_{u \in L_i} |L_i|^{-a} (|N_u| + 1)^{-b}
        e_u / \lVert e_u \rVert` (the normalization only with ``layer_norm``)."""
        factors = self.factors()[0]  # (U, d)
        degree = padded(self.user_degree_, factors.shape[0])
        return fold_in(users, factors, degree, *self._fold_in_norms())

    def _fold_in_norms(self) -> tuple[float, float, bool]:
        cfg = self.config
        return cfg.norm_left, cfg.norm_right, cfg.layer_norm

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write embeddings, config, id maps, known interactions and history atomically.

        The file is written to ``path`` exactly (no suffix is added); an existing file is
        replaced only once the new one is complete.
        """
        self._check_fitted()
        arrays = self.model_arrays()
        arrays["summary"] = summary_array(self)
        return atomic_write_npz(path, arrays)

    def model_arrays(self) -> dict[str, Any]:
        """The fields of a saved model (a training checkpoint adds its own)."""
        arrays = catalogue_arrays(self)
        arrays["embedding"] = self.embedding_.detach().cpu().numpy()
        arrays["config"] = to_json_array(self.config.to_dict())
        return arrays

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> LightGCN:
        """Load a model written by :meth:`save` (or a training checkpoint). Never unpickles.

        Args:
            path: the ``.npz`` file.
            device: where to put the model; default: where it was trained, or the CPU (with a
                warning) when that was a CUDA device this machine lacks.

        Raises:
            FileNotFoundError: no file at ``path``.
            CheckpointError: not a lightgcn-sparse model, another format version, truncated,
                or inconsistent contents. The message names the file and the problem.
        """
        where = repr(str(path))
        data = read_npz(path)
        kind = str(data.get("kind", cls.kind))
        if kind != cls.kind:
            raise CheckpointError(f"{where} holds a {kind} model, not a {cls.kind} one.")
        require_fields(data, path, ("embedding", "config", "shape", "train_indptr"))
        cfg = config_field(data, path)
        if device is not None:
            cfg = cfg.replace(device=device)
        elif cfg.device.startswith("cuda") and not torch.cuda.is_available():
            warnings.warn(
                f"{where} was trained on {cfg.device!r}, which this machine lacks; "
                "loading it on the CPU.",
                stacklevel=2,
            )
            cfg = cfg.replace(device="cpu")
        model = cls(cfg)
        dev = model.device
        fields = read_catalogue(data, where, cfg.embedding_dim)
        trained_users, trained_items = fields["trained"]
        emb = float_array(
            data["embedding"], (trained_users + trained_items, cfg.embedding_dim), where,
            "embedding",
        )  # fmt: skip
        model._load_catalogue(fields)
        model._build_graph(model.trained_interactions_)
        model.embedding_ = torch.nn.Parameter(torch.from_numpy(emb).to(dev))
        model.dataset = str(data.get("dataset", ""))
        summary = summary_field(data, path)
        model.best_epoch_ = int(summary.get("best_epoch", 0) or 0)
        history = list(summary.get("history", []))
        # version 0.1 kept each epoch's seconds in its history record ("time")
        model.history_ = [{k: v for k, v in r.items() if k != "time"} for r in history]
        model.timings_ = list(summary.get("timings", [])) or [
            {"epoch": r.get("epoch"), "seconds": r["time"]} for r in history if "time" in r
        ]
        return model

    def _default_ks(self) -> tuple[int, ...]:
        return self.config.ks

    def __repr__(self) -> str:
        cfg = self.config
        try:
            alpha = [round(a, 4) for a in layer_weights(cfg.num_layers, cfg.alpha)]
        except (TypeError, ValueError):  # an invalid config still prints
            alpha = cfg.alpha
        shape = (
            f", users={self.num_users_}, items={self.num_items_}"
            if hasattr(self, "train_")
            else ""
        )
        plus = (  # LightGCN++'s options, when set
            f", norm_left={cfg.norm_left}, norm_right={cfg.norm_right}, "
            f"layer_norm={cfg.layer_norm}"
            if (cfg.norm_left, cfg.norm_right, cfg.layer_norm) != (0.5, 0.5, False)
            else ""
        )
        return (
            f"LightGCN(embedding_dim={cfg.embedding_dim}, num_layers={cfg.num_layers}, "
            f"alpha={alpha}{plus}{shape})"
        )
