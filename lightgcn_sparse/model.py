r"""The LightGCN recommender, with an API modelled on ``implicit``.

He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
Recommendation", SIGIR 2020, https://arxiv.org/abs/2002.02126.

.. math::
    E^{(k+1)} = \hat A E^{(k)}, \qquad E = \sum_{k=0}^{K} \alpha_k E^{(k)}, \qquad
    \hat y_{ui} = \langle e_u, e_i \rangle

with :math:`\hat A = D^{-1/2} A D^{-1/2}` of the user-item bipartite graph. The layer-0
embeddings :math:`E^{(0)}` are the only trained parameters.

Shapes: ``U`` users, ``I`` items, ``N = U + I`` nodes, ``d`` = ``embedding_dim``.
"""

from __future__ import annotations

import hashlib
import math
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Union

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from ._checks import as_index_tensor, check_device, check_int
from .adjacency import normalized_adjacency
from .checkpoint import (
    CheckpointError,
    atomic_write_npz,
    from_json_array,
    read_npz,
    to_json_array,
)
from .config import Config
from .interactions import UserItems, as_user_items
from .loss import bpr_loss
from .metrics import evaluate_ranking, topk_scores
from .progress import Progress
from .propagation import layer_weights, propagate
from .sampling import BPRSampler

UserItemsLike = Union[sp.spmatrix, UserItems]


class NotFittedError(RuntimeError):
    """The model was used before ``fit`` or ``load``."""


class TrainingDiverged(RuntimeError):
    """The loss or the embeddings became NaN or infinite during training."""


class LightGCN:
    """LightGCN trained with BPR, following ``implicit``'s recommender API.

    Args:
        config: a :class:`~lightgcn_sparse.config.Config`; default ``Config()``.
        **overrides: any :class:`Config` field, e.g. ``LightGCN(embedding_dim=32)``.

    Attributes (after :meth:`fit` or :meth:`load`):
        embedding_: (N, d) layer-0 embeddings, users first.
        user_factors: (U, d) float32 numpy, final propagated user embeddings.
        item_factors: (I, d) float32 numpy, final propagated item embeddings.
        history_: one dict per epoch (loss, val_loss, validation metrics, time, lr).
        best_epoch_: the epoch whose embeddings were kept (early stopping), or the last.
    """

    def __init__(self, config: Config | None = None, **overrides: Any) -> None:
        if config is not None and not isinstance(config, Config):
            raise TypeError(f"config must be a Config. Got {type(config).__name__}.")
        self.config = (config or Config()).replace(**overrides)
        self.user_ids: np.ndarray | None = None  # raw id of each user index, if known
        self.item_ids: np.ndarray | None = None  # raw id of each item index, if known
        self.dataset: str = ""  # name of the training data set (e.g. "ml-100k"), saved

    # ------------------------------------------------------------------ state
    @property
    def device(self) -> torch.device:
        return check_device(self.config.device)

    def _check_fitted(self) -> None:
        if not hasattr(self, "embedding_"):
            raise NotFittedError("this LightGCN is not fitted yet; call fit() or load() first.")

    @property
    def num_users(self) -> int:
        self._check_fitted()
        return self.num_users_

    @property
    def num_items(self) -> int:
        self._check_fitted()
        return self.num_items_

    def _set_graph(self, train: UserItems) -> None:
        """Build the normalized adjacency once for this training graph."""
        self.train_ = train
        self.fingerprint_ = fingerprint(train)
        self.num_users_, self.num_items_ = train.num_users, train.num_items
        users = train.row_ids()
        self.adj_ = normalized_adjacency(
            users, train.indices, self.num_users_, self.num_items_, device=self.device
        )
        self.item_degree_ = torch.bincount(train.indices, minlength=self.num_items_)
        self._final: torch.Tensor | None = None

    def _propagated(self) -> torch.Tensor:
        """(N, d) final embeddings of the current layer-0 embeddings (cached)."""
        self._check_fitted()
        if self._final is None:
            cfg = self.config
            with torch.no_grad():
                self._final = propagate(
                    self.adj_,
                    self.embedding_.detach(),
                    cfg.num_layers,
                    cfg.alpha,
                    kernel=cfg.kernel,
                )
        return self._final

    @property
    def user_factors(self) -> np.ndarray:
        return self._propagated()[: self.num_users_].cpu().numpy()

    @property
    def item_factors(self) -> np.ndarray:
        return self._propagated()[self.num_users_ :].cpu().numpy()

    # ------------------------------------------------------------------ training
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
    ) -> LightGCN:
        """Train on ``user_items`` with BPR and Adam; returns ``self``.

        Args:
            user_items: scipy (U, I) sparse matrix of interactions (any non-zero counts once),
                a :class:`UserItems`, or a tuple ``(users, items)`` / ``(users, items, U, I)``
                of index arrays.
            validation: (U, I) held-out interactions for early stopping on
                ``config.metric`` (already-seen training items are excluded from ranking).
            show_progress: print a progress line per epoch to stderr.
            checkpoint_path: where to write training checkpoints (atomically).
            checkpoint_every: write a checkpoint every this many epochs (0: never).
            resume: a checkpoint written by an earlier, interrupted ``fit`` with the same data
                and config; training continues where it stopped, with identical results.
            callback: called with each epoch's history record.

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
        cfg = self.config.validate()
        dev = self.device
        train = self._as_train(user_items, dev)
        valid = None
        if validation is not None:
            valid = as_user_items(validation, train.num_users, dev, "validation")
            if valid.num_items != train.num_items:
                raise ValueError(
                    f"validation must have {train.num_items} columns (items). "
                    f"Got {valid.num_items}."
                )
        checkpoint_every = check_int("checkpoint_every", checkpoint_every, low=0)
        if checkpoint_every and checkpoint_path is None:
            raise ValueError("checkpoint_every needs checkpoint_path.")
        if checkpoint_path is not None and Path(checkpoint_path).is_dir():
            raise ValueError(
                f"checkpoint_path {str(checkpoint_path)!r} is a directory; name a file in it."
            )
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable. Got {type(callback).__name__}.")
        if valid is not None and max(cfg.ks) > train.num_items:
            raise ValueError(
                f"the validation cutoffs ks={cfg.ks} (with metric {cfg.metric!r}) exceed the "
                f"catalogue of {train.num_items} items; use cutoffs <= {train.num_items}."
            )
        valid_fp = fingerprint(valid) if valid is not None else ""
        self._set_graph(train)
        sampler = BPRSampler(train)
        if sampler.full_users.numel():
            warnings.warn(
                f"{sampler.full_users.numel()} user(s) interacted with every item and have no "
                "negative; they are left out of BPR sampling.",
                stacklevel=2,
            )
        gen = torch.Generator(device=dev).manual_seed(cfg.seed)
        init_gen = torch.Generator().manual_seed(cfg.seed)
        x0 = (
            torch.randn(self.num_users_ + self.num_items_, cfg.embedding_dim, generator=init_gen)
            * cfg.init_std
        )
        self.embedding_ = torch.nn.Parameter(x0.to(dev))
        opt = torch.optim.Adam([self.embedding_], lr=cfg.learning_rate)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.lr_decay)
        # Early-stopping state; saved in checkpoints together with everything else that
        # decides the rest of the run (Adam moments and step, LR schedule, generator).
        state: dict[str, Any] = {
            "epoch": 0,  # last completed epoch
            "best_score": -math.inf,
            "best_epoch": 0,
            "bad_evals": 0,  # validations without improvement since the best
            "stopped": False,  # early stopping fired: a resumed run trains no further
        }
        self.history_: list[dict] = []
        best = self.embedding_.detach().clone()
        last_ckpt: tuple[str, int] | None = None  # (path, epoch) of the newest checkpoint
        if resume is not None:
            best = self._restore_training(resume, opt, sched, gen, state, valid_fp)
            last_ckpt = (str(resume), state["epoch"])
        steps = cfg.steps_per_epoch(sampler._eligible_entries.numel())
        val_gen_seed = cfg.seed + 1
        progress = Progress(cfg.epochs, show_progress, keys=("val_loss", cfg.metric))

        for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
            if state["stopped"]:  # resumed from the checkpoint written when early stopping fired
                break
            start = time.perf_counter()
            total, count = 0.0, 0
            last_good = self.embedding_.detach().clone()
            for b, (u, p, n) in enumerate(self._batches(sampler, steps, gen), start=1):
                loss = self._step(opt, u, p, n)
                if not math.isfinite(loss):
                    self._diverged(last_good, epoch, f"batch {b}: loss is {loss}", last_ckpt)
                total += loss * u.numel()
                count += u.numel()
                progress.step(epoch, b, steps, total / count)
            sched.step()
            self._final = None
            problem = self._nonfinite_state(opt)
            if problem:
                self._diverged(last_good, epoch, problem, last_ckpt)
            record: dict[str, Any] = {"epoch": epoch, "loss": total / max(count, 1)}
            if valid is not None and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
                record["val_loss"] = self._validation_loss(valid, val_gen_seed)
                metrics = self.evaluate(valid, exclude=train)
                record.update({k: v for k, v in metrics.items() if k != "users"})
                score = metrics[cfg.metric]
                record["improved"] = score > state["best_score"]
                if record["improved"]:
                    state.update(best_score=score, best_epoch=epoch, bad_evals=0)
                    best = self.embedding_.detach().clone()
                else:
                    state["bad_evals"] += 1
            record["time"] = time.perf_counter() - start
            record["lr"] = opt.param_groups[0]["lr"]
            self.history_.append(record)
            state["epoch"] = epoch
            progress.epoch_end(epoch, record)
            if callback is not None:
                callback(record)
            stop = bool(valid is not None and cfg.patience and state["bad_evals"] >= cfg.patience)
            state["stopped"] = stop
            if checkpoint_every and (epoch % checkpoint_every == 0 or stop):
                self._save_training(checkpoint_path, opt, sched, gen, state, best, valid_fp)
                last_ckpt = (str(checkpoint_path), epoch)
            if stop:
                break

        if valid is not None and state["best_epoch"] > 0:
            with torch.no_grad():
                self.embedding_.copy_(best)
            self.best_epoch_ = state["best_epoch"]
        else:
            self.best_epoch_ = state["epoch"]
        self.embedding_.grad = None  # the last step's (N, d) gradient is of no further use
        self._final = None
        return self

    def _as_train(self, user_items: UserItemsLike | tuple, dev: torch.device) -> UserItems:
        if isinstance(user_items, tuple):
            from .interactions import user_items_from_pairs

            if len(user_items) == 4:
                ui = user_items_from_pairs(*user_items, device=dev)
            elif len(user_items) == 2:
                users, items = (
                    as_index_tensor(n, a) for n, a in zip(("users", "items"), user_items)
                )
                nu = int(users.max()) + 1 if users.numel() else 0
                ni = int(items.max()) + 1 if items.numel() else 0
                ui = user_items_from_pairs(users, items, nu, ni, device=dev)
            else:
                raise ValueError(
                    "user_items as a tuple must be (users, items) or (users, items, num_users, "
                    f"num_items). Got a tuple of length {len(user_items)}."
                )
        else:
            ui = as_user_items(user_items, None, dev, "user_items")
        if ui.nnz == 0:
            raise ValueError("user_items has no interactions; there is nothing to train on.")
        return ui

    def _batches(self, sampler: BPRSampler, steps: int, gen: torch.Generator):
        cfg = self.config
        if cfg.sampling == "users":
            for _ in range(steps):
                yield sampler.sample_users(cfg.batch_size, gen)
            return
        done = 0
        while done < steps:  # one or more shuffled passes, cut at `steps` batches
            for batch in sampler.epoch(cfg.batch_size, gen):
                yield batch
                done += 1
                if done == steps:
                    return

    def _step(self, opt: torch.optim.Optimizer, u, p, n) -> float:
        """One BPR step on a batch; returns the batch loss."""
        opt.zero_grad(set_to_none=True)
        loss = self._bpr(self.embedding_, u, p, n)
        loss.backward()
        self._reduce_gradients()
        opt.step()
        return float(loss.detach())

    def _bpr(self, x0: torch.Tensor, u, p, n) -> torch.Tensor:
        cfg = self.config
        out = propagate(self.adj_, x0, cfg.num_layers, cfg.alpha, kernel=cfg.kernel)  # (N, d)
        rows = torch.cat([u, p + self.num_users_, n + self.num_users_])  # (3B,) node ids
        # F.embedding, not out[rows]: the backward of advanced indexing is a parallel
        # index_put_(accumulate=True), whose float sums change order from run to run on CPU;
        # embedding's backward gives each thread its own output rows and is reproducible.
        eu, ep, en = F.embedding(rows, out).chunk(3)  # (B, d) each
        layer0 = F.embedding(rows, x0).chunk(3)
        return bpr_loss(eu, ep, en, layer0, cfg.reg)

    def _reduce_gradients(self) -> None:
        """Hook for data-parallel training (see :mod:`lightgcn_sparse.distributed`)."""

    @torch.no_grad()
    def _validation_loss(self, valid: UserItems, seed: int) -> float:
        """BPR loss on the validation interactions, negatives fixed by ``seed``."""
        if valid.nnz == 0:
            return float("nan")
        sampler = BPRSampler(valid)
        users = valid.row_ids()
        ok = sampler._free[users] > 0
        users, pos = users[ok], valid.indices[ok]
        gen = torch.Generator(device=valid.device).manual_seed(seed)
        neg = sampler.negatives(users, gen)
        bad = self.train_.contains(users, neg)  # redraw negatives that are training items
        for _ in range(10):
            if not bool(bad.any()):
                break
            neg[bad] = sampler.negatives(users[bad], gen)
            bad = self.train_.contains(users, neg)
        return float(self._bpr(self.embedding_.detach(), users, pos, neg))

    def _nonfinite_state(self, opt: torch.optim.Optimizer) -> str:
        """Why the state after an epoch is unusable, or ``""`` when it is fine.

        Finite layer-0 embeddings are not enough: scores are inner products of propagated
        embeddings, so those must be small enough that no score overflows.
        """
        if not bool(torch.isfinite(self.embedding_).all()):
            return "the embeddings became NaN or infinite"
        for key, value in opt.state.get(self.embedding_, {}).items():
            if isinstance(value, torch.Tensor) and not bool(torch.isfinite(value).all()):
                return f"the optimizer's {key!r} became NaN or infinite"
        final = self._propagated()  # cached: validation reuses it
        if final.numel():
            peak = float(final.abs().max())
            if peak * peak * final.shape[1] >= torch.finfo(final.dtype).max:
                return f"the embeddings grew to {peak:.3g}, so scores overflow"
        return ""

    def _diverged(self, last_good, epoch: int, why: str, last_ckpt) -> None:
        """Put back the embeddings from the start of ``epoch`` and raise TrainingDiverged."""
        with torch.no_grad():
            self.embedding_.copy_(last_good)
        self.embedding_.grad = None
        self._final = None
        if last_ckpt is not None:
            kept = f"the last checkpoint, {last_ckpt[0]!r} (epoch {last_ckpt[1]}), is untouched"
        else:
            kept = "no checkpoint was written"
        raise TrainingDiverged(
            f"training diverged at epoch {epoch} ({why}). The model holds the embeddings "
            f"from the start of that epoch; {kept}. Lower learning_rate (now "
            f"{self.config.learning_rate}) or raise reg (now {self.config.reg})."
        )

    # ------------------------------------------------------------------ checkpoints
    def _save_training(self, path, opt, sched, gen, state, best, valid_fp: str) -> None:
        """Write everything the rest of the run depends on, so a resume is bit-identical."""
        opt_state = opt.state_dict()
        tensors: dict[str, np.ndarray] = {}
        plain: dict[str, Any] = {}
        for key, value in opt_state["state"].get(0, {}).items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim_{key}"] = value.detach().cpu().numpy()
            else:
                plain[key] = value
        train_state = {
            **state,
            "history": self.history_,
            "optimizer": {
                "param_groups": opt_state["param_groups"],
                "state": plain,
                "tensors": sorted(tensors),
            },
            "scheduler": sched.state_dict(),
            "generator_device": gen.device.type,
            "validation": valid_fp,
        }
        arrays = self._arrays()
        arrays.update(
            train_state=to_json_array(train_state),
            best_embedding=best.detach().cpu().numpy(),
            rng_state=gen.get_state().cpu().numpy(),
            **tensors,
        )
        atomic_write_npz(path, arrays)

    def _restore_training(self, path, opt, sched, gen, state, valid_fp: str) -> torch.Tensor:
        """Load a checkpoint of :meth:`_save_training` into this run; return the best (N, d)."""
        where = repr(str(path))
        data = read_npz(path, ("embedding", "config", "shape"))
        if "train_state" not in data:
            raise CheckpointError(
                f"{where} is a saved model, not a training checkpoint; resume from the "
                "checkpoint that training writes with checkpoint_every (--checkpoint-every)."
            )
        missing = [k for k in ("fingerprint", "rng_state", "best_embedding") if k not in data]
        if missing:
            raise CheckpointError(f"{where} lacks the field(s) {missing}.")
        self._check_compatible(data, path)
        saved = from_json_array(data["train_state"], path, "train_state")
        shape = tuple(self.embedding_.shape)
        try:
            if saved.get("validation", "") != valid_fp:
                raise CheckpointError(
                    f"{where} was trained with other validation data "
                    f"({saved.get('validation') or 'none'}); this run has {valid_fp or 'none'}. "
                    "Resume with the same data and split."
                )
            if saved["generator_device"] != gen.device.type:
                raise CheckpointError(
                    f"{where} was written on {saved['generator_device']}; its random state "
                    f"cannot continue on {gen.device.type}. Resume on the same device type."
                )
            emb = _float_array(data["embedding"], shape, where, "embedding")
            best = _float_array(data["best_embedding"], shape, where, "best_embedding")
            opt_saved = saved["optimizer"]
            moments = {}
            for name in opt_saved["tensors"]:
                arr = data[name]
                if arr.ndim and arr.shape != shape:
                    raise CheckpointError(f"{where}: {name} has shape {arr.shape}, not {shape}.")
                moments[name[len("optim_") :]] = torch.from_numpy(np.array(arr))
            rng = data["rng_state"]
            if rng.dtype != np.uint8 or rng.ndim != 1:
                raise CheckpointError(f"{where}: rng_state is not a generator state.")
            new_state = {
                "epoch": int(saved["epoch"]),
                "best_score": float(saved["best_score"]),
                "best_epoch": int(saved["best_epoch"]),
                "bad_evals": int(saved["bad_evals"]),
                "stopped": bool(saved.get("stopped", False)),
            }
            history = list(saved["history"])
            with torch.no_grad():
                self.embedding_.copy_(torch.from_numpy(emb))
            opt.load_state_dict(
                {
                    "state": {0: {**opt_saved["state"], **moments}} if moments else {},
                    "param_groups": opt_saved["param_groups"],
                }
            )
            sched.load_state_dict(saved["scheduler"])
            gen.set_state(torch.from_numpy(np.array(rng)))
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(
                f"{where}: the training state is incomplete or malformed "
                f"({type(err).__name__}: {err})."
            ) from err
        state.update(new_state)
        self.history_ = history
        return torch.from_numpy(best).to(self.device)

    def _arrays(self) -> dict[str, Any]:
        arrays: dict[str, Any] = {
            "embedding": self.embedding_.detach().cpu().numpy(),
            "config": to_json_array(self.config.to_dict()),
            "shape": np.array([self.num_users_, self.num_items_], dtype=np.int64),
            "dataset": np.array(self.dataset),
            "fingerprint": np.array(self.fingerprint_),
            "train_indptr": self.train_.indptr.cpu().numpy(),
            "train_indices": self.train_.indices.cpu().numpy(),
        }
        if self.user_ids is not None:
            arrays["user_ids"] = np.asarray(self.user_ids).astype(str)
        if self.item_ids is not None:
            arrays["item_ids"] = np.asarray(self.item_ids).astype(str)
        return arrays

    def _check_compatible(self, data: dict, path) -> None:
        """A resumed checkpoint must come from the same data and hyperparameters."""
        saved_cfg = from_json_array(data["config"], path, "config")
        if not isinstance(saved_cfg, dict):
            raise CheckpointError(f"{str(path)!r}: field 'config' is not a JSON object.")
        mine = self.config.to_dict()
        differ = sorted(
            k
            for k in set(mine) | set(saved_cfg)
            if k not in ("epochs", "device", "extra") and saved_cfg.get(k) != mine.get(k)
        )
        if differ:
            shown = ", ".join(f"{k}={saved_cfg.get(k)!r} (now {mine.get(k)!r})" for k in differ)
            raise CheckpointError(
                f"{str(path)!r} was written with different settings: {shown}. Resume with "
                "the same configuration, or start a new run."
            )
        shape = _shape_field(data, repr(str(path)))
        theirs = str(data.get("fingerprint", ""))
        if shape != (self.num_users_, self.num_items_) or theirs != self.fingerprint_:
            raise CheckpointError(
                f"{str(path)!r} was trained on other data ({shape[0]} users x {shape[1]} "
                f"items, {theirs}); this run has {self.num_users_} x {self.num_items_}, "
                f"{self.fingerprint_}. Resume with the same data and split."
            )

    def save(self, path: str | Path) -> Path:
        """Write embeddings, config, id mappings, training interactions and history atomically.

        The file is written to ``path`` exactly (no suffix is added); an existing file is
        replaced only once the new one is complete.
        """
        self._check_fitted()
        arrays = self._arrays()
        arrays["summary"] = to_json_array(
            {
                "best_epoch": getattr(self, "best_epoch_", 0),
                "history": getattr(self, "history_", []),
            }
        )
        return atomic_write_npz(path, arrays)

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
        data = read_npz(path, ("embedding", "config", "shape", "train_indptr", "train_indices"))
        try:
            cfg = Config.from_dict(from_json_array(data["config"], path, "config"))
        except CheckpointError:
            raise
        except (TypeError, ValueError, AttributeError) as err:
            raise CheckpointError(
                f"{where}: its config cannot be used by this version ({err})"
            ) from err
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
        num_users, num_items = _shape_field(data, where)
        emb = _float_array(
            data["embedding"], (num_users + num_items, cfg.embedding_dim), where, "embedding"
        )
        indptr, indices = _csr_arrays(data, num_users, num_items, where)
        train = UserItems(
            torch.from_numpy(indptr).to(dev), torch.from_numpy(indices).to(dev), num_items
        )
        for name, count in (("user_ids", num_users), ("item_ids", num_items)):
            ids = data.get(name)
            if ids is not None and ids.shape != (count,):
                raise CheckpointError(f"{where}: {name} has shape {ids.shape}, not ({count},).")
        model._set_graph(train)
        model.embedding_ = torch.nn.Parameter(torch.from_numpy(emb).to(dev))
        model.dataset = str(data.get("dataset", ""))
        model.user_ids = data.get("user_ids")
        model.item_ids = data.get("item_ids")
        summary = {}
        if "summary" in data:
            summary = from_json_array(data["summary"], path, "summary")
        elif "train_state" in data:
            summary = from_json_array(data["train_state"], path, "train_state")
        if not isinstance(summary, dict):
            raise CheckpointError(f"{where}: field 'summary' is not a JSON object.")
        model.best_epoch_ = int(summary.get("best_epoch", 0) or 0)
        model.history_ = list(summary.get("history", []))
        return model

    # ------------------------------------------------------------------ inference
    def evaluate(
        self,
        test: UserItemsLike,
        exclude: UserItemsLike | None = None,
        ks: Sequence[int] | None = None,
    ) -> dict[str, float]:
        """Full-ranking metrics on ``test``; ``exclude`` (default: training) is not ranked."""
        self._check_fitted()
        dev = self.device
        truth = self._check_columns(as_user_items(test, self.num_users_, dev, "test"), "test")
        excl = (
            self.train_
            if exclude is None
            else self._check_columns(
                as_user_items(exclude, self.num_users_, dev, "exclude"), "exclude"
            )
        )
        final = self._propagated()
        return evaluate_ranking(
            final[: self.num_users_],
            final[self.num_users_ :],
            truth,
            excl,
            ks or self.config.ks,
        )

    def _check_columns(self, ui: UserItems, name: str) -> UserItems:
        if ui.num_items != self.num_items_:
            raise ValueError(
                f"{name} must have {self.num_items_} columns (items). Got {ui.num_items}."
            )
        return ui

    def _user_rows(
        self, userid, user_items, recalculate: bool
    ) -> tuple[torch.Tensor, torch.Tensor, UserItems | None]:
        """Embeddings (n, d), user ids (n,) and the rows of seen items for ``userid``."""
        single = np.ndim(userid) == 0
        if recalculate:
            n = 1 if single else len(userid)
            if user_items is None:
                raise ValueError("recalculate_user=True needs user_items (the user's items).")
            seen = as_user_items(user_items, n, self.device, "user_items")
            emb = self._fold_in(seen)
            return emb, torch.arange(n, device=self.device), seen
        users = as_index_tensor("userid", userid, self.num_users_, self.device)
        if user_items is None:
            return self._propagated()[users], users, self.train_
        seen = as_user_items(user_items, users.numel(), self.device, "user_items")
        self._check_columns(seen, "user_items")
        return self._propagated()[users], torch.arange(users.numel(), device=self.device), seen

    def recommend(
        self,
        userid: int | Sequence[int] | np.ndarray,
        user_items: UserItemsLike | None = None,
        N: int = 10,
        filter_already_liked_items: bool = True,
        filter_items: Sequence[int] | None = None,
        recalculate_user: bool = False,
        items: Sequence[int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``N`` items for one user or an array of users (``implicit``'s contract).

        Args:
            userid: a user index, or an array of them.
            user_items: (len(userid), I) sparse rows of each user's items, used to filter
                liked items (and, with ``recalculate_user``, to fold the user in). ``None``:
                the training interactions.
            N: list length, in ``[1, I]``.
            filter_already_liked_items: drop items in ``user_items`` from the ranking.
            filter_items: item ids never to recommend.
            recalculate_user: compute the user's embedding from ``user_items`` instead of the
                trained one (see :meth:`recalculate_user`); works for users unseen in training.
            items: rank only these item ids.

        Returns:
            ``(ids, scores)``: int32 and float32 arrays of shape (N,) for one user or (n, N)
            for n users, best first. A 1-D result is cut to the items available; a 2-D one is
            padded with id -1 and score -inf when fewer than N items are available.
        """
        self._check_fitted()
        N = check_int("N", N, low=1, high=self.num_items_)
        emb, rows, seen = self._user_rows(userid, user_items, recalculate_user)
        final = self._propagated()
        mask = torch.ones(self.num_items_, dtype=torch.bool, device=self.device)
        if items is not None:
            mask.zero_()
            mask[as_index_tensor("items", items, self.num_items_, self.device)] = True
        if filter_items is not None:
            mask[as_index_tensor("filter_items", filter_items, self.num_items_, self.device)] = (
                False
            )
        exclude = seen if filter_already_liked_items else None
        ids, scores = topk_scores(
            emb, final[self.num_users_ :], N, exclude, rows if exclude is not None else None, mask
        )
        ids = ids.to(torch.int32).cpu().numpy()
        scores = scores.to(torch.float32).cpu().numpy()
        ids[~np.isfinite(scores)] = -1
        if np.ndim(userid) == 0:
            keep = np.isfinite(scores[0])
            return ids[0][keep], scores[0][keep]
        return ids, scores

    def _fold_in(self, liked: UserItems) -> torch.Tensor:
        r"""(n, d) embeddings of users given only their items (no gradient steps).

        One LightGCN propagation step from the trained final item embeddings, treating each
        user as a new node joined to its liked items :math:`L_u`:

        .. math:: e_u = \sum_{i \in L_u} \frac{1}{\sqrt{|L_u|}\sqrt{|N_i| + 1}}\, e_i

        where :math:`|N_i|` is item ``i``'s training degree (``+1`` counts the new user).
        """
        self._check_columns(liked, "user_items")
        final_items = self._propagated()[self.num_users_ :]  # (I, d)
        dtype = final_items.dtype
        if liked.nnz == 0:
            return final_items.new_zeros(liked.num_users, final_items.shape[1])
        deg = liked.degrees().to(dtype).clamp_min(1)  # (n,)
        item = liked.indices  # (nnz,)
        w = (deg[liked.row_ids()] * (self.item_degree_[item] + 1).to(dtype)).rsqrt()  # (nnz,)
        # A weighted sum of item rows per user: one bag per user. Unlike index_add_, this
        # has no atomics (deterministic on CUDA) and no slow parallel scatter on CPU.
        return F.embedding_bag(
            item,
            final_items,
            liked.indptr,
            mode="sum",
            per_sample_weights=w,
            include_last_offset=True,
        )  # (n, d)

    def recalculate_user(self, userid, user_items: UserItemsLike) -> np.ndarray:
        """Embedding(s) of user(s) folded in from their items: (d,) or (n, d) float32.

        ``user_items`` holds one row per user; ``userid`` is only used to tell one user from
        many, so this works for users who were not in the training data.
        """
        self._check_fitted()
        single = np.ndim(userid) == 0
        n = 1 if single else len(userid)
        emb = self._fold_in(as_user_items(user_items, n, self.device, "user_items"))
        emb = emb.to(torch.float32).cpu().numpy()
        return emb[0] if single else emb

    def recommend_for_items(
        self, liked_items: Sequence[int], N: int = 10, filter_items: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``N`` for a brand-new user who likes ``liked_items`` (excluded from the list)."""
        self._check_fitted()
        liked = as_index_tensor("liked_items", liked_items, self.num_items_).numpy()
        if liked.size == 0:
            raise ValueError("liked_items is empty: name at least one item the user likes.")
        row = sp.csr_matrix(
            (np.ones(liked.size, dtype=np.float32), (np.zeros(liked.size, dtype=np.int64), liked)),
            shape=(1, self.num_items_),
        )
        return self.recommend(0, row, N=N, filter_items=filter_items, recalculate_user=True)

    def _similar(self, emb: torch.Tensor, idx, name: str, N: int, filter_items, items):
        index = as_index_tensor(name, idx, emb.shape[0], self.device)
        N = check_int("N", N, low=1, high=emb.shape[0])
        normed = torch.nn.functional.normalize(emb, dim=1)
        mask = torch.ones(emb.shape[0], dtype=torch.bool, device=self.device)
        if items is not None:
            mask.zero_()
            mask[as_index_tensor("items", items, emb.shape[0], self.device)] = True
        if filter_items is not None:
            mask[as_index_tensor("filter_items", filter_items, emb.shape[0], self.device)] = False
        ids, scores = topk_scores(normed[index], normed, N, None, None, mask)
        ids = ids.to(torch.int32).cpu().numpy()
        scores = scores.to(torch.float32).cpu().numpy()
        ids[~np.isfinite(scores)] = -1
        if np.ndim(idx) == 0:
            keep = np.isfinite(scores[0])
            return ids[0][keep], scores[0][keep]
        return ids, scores

    def similar_items(self, itemid, N: int = 10, filter_items=None, items=None):
        """Most similar items by cosine of the final embeddings (the item itself included)."""
        self._check_fitted()
        return self._similar(
            self._propagated()[self.num_users_ :], itemid, "itemid", N, filter_items, items
        )

    def similar_users(self, userid, N: int = 10, filter_users=None, users=None):
        """Most similar users by cosine of the final embeddings (the user itself included)."""
        self._check_fitted()
        return self._similar(
            self._propagated()[: self.num_users_], userid, "userid", N, filter_users, users
        )

    def __repr__(self) -> str:
        cfg = self.config
        try:
            alpha = [round(a, 4) for a in layer_weights(cfg.num_layers, cfg.alpha)]
        except (TypeError, ValueError):  # an invalid config still prints
            alpha = cfg.alpha
        shape = (
            f", users={self.num_users_}, items={self.num_items_}"
            if hasattr(self, "embedding_")
            else ""
        )
        return (
            f"LightGCN(embedding_dim={cfg.embedding_dim}, num_layers={cfg.num_layers}, "
            f"alpha={alpha}{shape})"
        )


def fingerprint(train: UserItems) -> str:
    """A short hash naming the training interactions, stored with checkpoints."""
    h = hashlib.sha256()
    h.update(np.array([train.num_users, train.num_items], dtype=np.int64).tobytes())
    h.update(train.indptr.cpu().numpy().astype(np.int64).tobytes())
    h.update(train.indices.cpu().numpy().astype(np.int64).tobytes())
    return "sha256:" + h.hexdigest()[:16]


def _shape_field(data: dict, where: str) -> tuple[int, int]:
    """The stored ``(num_users, num_items)``."""
    shape = data["shape"]
    if shape.shape != (2,) or shape.dtype.kind not in "iu" or int(shape.min()) < 0:
        raise CheckpointError(f"{where}: field 'shape' is not (num_users, num_items).")
    return int(shape[0]), int(shape[1])


def _float_array(arr: np.ndarray, shape: tuple, where: str, name: str) -> np.ndarray:
    """``arr`` as finite float32 of ``shape``, or :class:`CheckpointError` naming the field."""
    if arr.dtype.kind != "f" or arr.shape != tuple(shape):
        raise CheckpointError(
            f"{where}: {name} is {arr.dtype} of shape {arr.shape}; expected floats of shape "
            f"{tuple(shape)}."
        )
    if not np.isfinite(arr).all():
        raise CheckpointError(f"{where}: {name} holds NaN or infinite values.")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _csr_arrays(data: dict, num_users: int, num_items: int, where: str):
    """Checked int64 ``(indptr, indices)`` of the stored training interactions."""
    indptr, indices = data["train_indptr"], data["train_indices"]
    ok = (
        indptr.dtype.kind in "iu"
        and indices.dtype.kind in "iu"
        and indptr.shape == (num_users + 1,)
        and indices.ndim == 1
    )
    if ok:
        indptr, indices = indptr.astype(np.int64), indices.astype(np.int64)
        row = np.repeat(np.arange(num_users, dtype=np.int64), np.diff(indptr).clip(min=0))
        ok = (
            indptr[0] == 0
            and bool(np.all(np.diff(indptr) >= 0))
            and indptr[-1] == indices.size
            and (indices.size == 0 or (indices.min() >= 0 and indices.max() < num_items))
            and bool(np.all(np.diff(row * num_items + indices) > 0))  # sorted, no duplicates
        )
    if not ok:
        raise CheckpointError(
            f"{where}: the stored training interactions (train_indptr, train_indices) do not "
            f"form a valid {num_users} x {num_items} CSR matrix."
        )
    return indptr, indices
