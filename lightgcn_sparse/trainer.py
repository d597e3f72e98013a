"""Training apart from the model: the loop, early stopping, divergence, checkpoints, callbacks.

A :class:`Trainer` drives any model that offers the training side of the contract
(``config``, ``setup(train, user_map, item_map)``, ``parameters()``, ``loss(u, p, n)``,
``parameters_changed()``, ``divergence()``, ``evaluate(...)``, ``model_arrays()``), through an
execution strategy that says how a step is executed: :class:`SingleProcess` (the default) or
:class:`~lightgcn_sparse.distributed.DataParallel`. Neither the model nor the strategy is
subclassed or patched; each talks to the trainer through the public methods named here.

Per epoch: the batches of the whole epoch are drawn first, each step is forward, backward,
gradient reduction (strategy) and an optimizer step; losses are summed on the device and read
once at the end of the epoch, where the run is also checked for divergence, validated (every
``eval_every`` epochs), checkpointed and reported to the callbacks.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from ._checks import check_int
from .checkpoint import atomic_write_npz
from .progress import Progress
from .recommender import UserItemsLike
from .resume import read_training_state, training_arrays
from .sampling import BPRSampler, validation_triples
from .steps import EagerStep, GraphedStep, keep_freed_memory, make_optimizer
from .user_items import UserItemIndex, as_user_items

__all__ = ["Callback", "SingleProcess", "TrainState", "Trainer"]


class SingleProcess:
    """Execute every step in this process (the default strategy).

    The methods are the strategy interface the trainer calls; see
    :class:`~lightgcn_sparse.distributed.DataParallel` for the data-parallel one.
    """

    rank = 0
    world_size = 1

    @property
    def is_writer(self) -> bool:
        """Whether this process prints and writes files."""
        return True

    def setup(self, model: Any) -> None:
        """Called once the parameters exist (fresh or resumed), before the first step."""

    def shard(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor):
        """This process's part of a global batch and its weight ``b_r / B``."""
        return users, pos, neg, 1.0

    def reduce_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Make every process hold the full-batch gradient."""

    def reduce_sum(self, value: torch.Tensor) -> torch.Tensor:
        """The sum of ``value`` over processes."""
        return value

    def on_writer(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` computed by the writer and shared with every process."""
        return fn()

    def finish(self, model: Any) -> None:
        """Called after training; a data-parallel strategy checks the copies agree."""


class Callback:
    """Hooks called by :meth:`Trainer.fit`; override the ones you need.

    ``on_step_end`` runs after every optimizer step and must not read tensors back to the
    host (that would synchronize a GPU every step).
    """

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        pass

    def on_step_end(self, trainer: Trainer, epoch: int, step: int) -> None:
        pass

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        pass


class _EpochFunction(Callback):
    """A plain callable, called with each epoch's history record."""

    def __init__(self, fn: Callable[[dict], None]) -> None:
        self.fn = fn

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        self.fn(record)


@dataclass
class TrainState:
    """Early-stopping state; checkpointed with everything else that decides the run."""

    epoch: int = 0  # last completed epoch
    best_score: float = -math.inf
    best_epoch: int = 0
    bad_evals: int = 0  # validations without improvement since the best
    stopped: bool = False  # early stopping fired: a resumed run trains no further


class Trainer:
    """Trains a model with BPR and Adam, following its ``config``.

    Args:
        model: e.g. a :class:`~lightgcn_sparse.model.LightGCN`.
        strategy: ``None`` (:class:`SingleProcess`) or a data-parallel strategy.
        show_progress: print progress (the writer process only).
        checkpoint_path: where to write resumable checkpoints (atomically).
        checkpoint_every: every this many epochs (0: never); also when early stopping fires.
        callbacks: :class:`Callback` objects, or callables taking each epoch's record.

    After :meth:`fit`: ``model.history_`` (one record per epoch: loss, validation loss and
    metrics, learning rate), ``model.timings_`` (seconds per epoch, kept apart so that
    identical runs have identical histories) and ``model.best_epoch_``.
    """

    def __init__(
        self,
        model: Any,
        strategy: Any = None,
        *,
        show_progress: bool = True,
        checkpoint_path: str | Path | None = None,
        checkpoint_every: int = 0,
        callbacks: Iterable[Any] = (),
    ) -> None:
        self.model = model
        self.strategy = strategy if strategy is not None else SingleProcess()
        needed = [n for n in STRATEGY_METHODS if not hasattr(self.strategy, n)]
        if needed:
            raise TypeError(
                "strategy must be None or an execution strategy such as "
                f"lightgcn_sparse.distributed.DataParallel (it lacks {needed}). "
                f"Got {strategy!r:.60}."
            )
        self.checkpoint_every = check_int("checkpoint_every", checkpoint_every, low=0)
        if self.checkpoint_every and checkpoint_path is None:
            raise ValueError("checkpoint_every needs checkpoint_path.")
        if checkpoint_path is not None and Path(checkpoint_path).is_dir():
            raise ValueError(
                f"checkpoint_path {str(checkpoint_path)!r} is a directory; name a file in it."
            )
        self.checkpoint_path = checkpoint_path
        self.show_progress = show_progress
        self.callbacks: list[Callback] = []
        for cb in callbacks:
            if isinstance(cb, Callback):
                self.callbacks.append(cb)
            elif callable(cb):
                self.callbacks.append(_EpochFunction(cb))
            else:
                raise TypeError(f"callback must be callable. Got {type(cb).__name__}.")

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        train: UserItemIndex,
        validation: UserItemsLike | None = None,
        *,
        resume: str | Path | None = None,
        id_maps: tuple[Any, Any] = (None, None),
    ) -> Any:
        """Train ``self.model`` on ``train``; early stopping on ``validation`` if given."""
        model, strategy = self.model, self.strategy
        cfg = model.config.validate()
        dev = model.device
        valid = self._validation(validation, train, dev)
        writer = strategy.is_writer
        model.setup(train, *id_maps)
        sampler = BPRSampler(train)
        if sampler.full_users.numel() and writer:
            warnings.warn(
                f"{sampler.full_users.numel()} user(s) interacted with every item and have no "
                "negative; they are left out of BPR sampling.",
                stacklevel=3,
            )
        params = model.parameters()
        self.generator = torch.Generator(device=dev).manual_seed(cfg.seed)
        graphs = _use_cuda_graph(cfg, dev, strategy)
        if dev.type == "cpu":
            keep_freed_memory()
        self.optimizer = make_optimizer(params, cfg.learning_rate, capturable=graphs)
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, cfg.lr_decay)
        self.state = TrainState()
        model.history_, model.timings_ = [], []
        best = [p.detach().clone() for p in params]
        last_good = [torch.empty_like(p) for p in params]
        self.last_checkpoint: tuple[str, int] | None = None
        valid_fp = model_fingerprint(valid) if valid is not None else ""
        if resume is not None:
            best = self._restore(resume, valid_fp)
            self.last_checkpoint = (str(resume), self.state.epoch)
        strategy.setup(model)
        steps = cfg.steps_per_epoch(sampler.num_eligible)
        if graphs:
            self.step = GraphedStep(model, self.optimizer, cfg.batch_size, cfg.cuda_graph)
        else:
            self.step = EagerStep(model, strategy, self.optimizer)
        val_triples = None
        if valid is not None and valid.nnz:
            val_gen = torch.Generator(device=dev).manual_seed(cfg.seed + 1)
            val_triples = validation_triples(valid, train, val_gen)
        progress = Progress(cfg.epochs, self.show_progress and writer,
                            keys=("val_loss", cfg.metric))  # fmt: skip

        for epoch in range(self.state.epoch + 1, cfg.epochs + 1):
            if self.state.stopped:  # resumed from the checkpoint written when early stopping fired
                break
            start = time.perf_counter()
            for cb in self.callbacks:
                cb.on_epoch_start(self, epoch)
            for saved, p in zip(last_good, params):
                saved.copy_(p.detach())
            total = torch.zeros((), dtype=torch.float64, device=dev)
            count = 0
            triples, sizes = sampler.epoch_triples(cfg.sampling, cfg.batch_size, steps,
                                                   self.generator)  # fmt: skip
            for b, (u, p, n) in enumerate(zip(*(t.split(sizes) for t in triples)), start=1):
                total += self.step(u, p, n).to(torch.float64) * u.numel()
                count += u.numel()
                for cb in self.callbacks:
                    cb.on_step_end(self, epoch, b)
                progress.step(epoch, b, steps, total, count)
            lr = self.optimizer.param_groups[0]["lr"]
            self.scheduler.step()
            if self.optimizer.param_groups[0]["lr"] != lr:
                self.step.lr_changed()
            model.parameters_changed()
            loss = float(strategy.reduce_sum(total)) / max(count, 1)  # one sync per epoch
            problem = _divergence(loss, model, self.optimizer)
            if problem:
                self._diverged(last_good, epoch, problem)
            record: dict[str, Any] = {"epoch": epoch, "loss": loss}
            if valid is not None and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
                record.update(strategy.on_writer(lambda: self._validate(valid, train, val_triples)))
                score = record[cfg.metric]
                record["improved"] = score > self.state.best_score
                if record["improved"]:
                    self.state.best_score, self.state.best_epoch = score, epoch
                    self.state.bad_evals = 0
                    best = [p.detach().clone() for p in params]
                else:
                    self.state.bad_evals += 1
            record["lr"] = self.optimizer.param_groups[0]["lr"]
            seconds = time.perf_counter() - start
            model.history_.append(record)
            model.timings_.append({"epoch": epoch, "seconds": seconds})
            self.state.epoch = epoch
            progress.epoch_end(epoch, record, seconds)
            for cb in self.callbacks:
                cb.on_epoch_end(self, record)
            stop = bool(valid is not None and cfg.patience and self.state.bad_evals >= cfg.patience)
            self.state.stopped = stop
            if self.checkpoint_every and (epoch % self.checkpoint_every == 0 or stop):
                if writer:
                    self._save(best, valid_fp)
                self.last_checkpoint = (str(self.checkpoint_path), epoch)
            if stop:
                break

        with torch.no_grad():
            if valid is not None and self.state.best_epoch > 0:
                for p, b in zip(params, best):
                    p.copy_(b)
                model.best_epoch_ = self.state.best_epoch
            else:
                model.best_epoch_ = self.state.epoch
        for p in params:
            p.grad = None  # the last step's (N, d) gradient is of no further use
        model.parameters_changed()
        strategy.finish(model)
        return model

    # ------------------------------------------------------------------ pieces
    def _validation(self, validation, train: UserItemIndex, dev) -> Optional[UserItemIndex]:
        if validation is None:
            return None
        valid = as_user_items(validation, train.num_users, dev, "validation")
        if valid.num_items != train.num_items:
            raise ValueError(
                f"validation must have {train.num_items} columns (items). Got {valid.num_items}."
            )
        if not valid.nnz:
            raise ValueError(
                "validation holds no interactions, so no epoch can be chosen on it (every "
                "metric would be NaN); pass None to train for the configured epochs."
            )
        cfg = self.model.config
        if max(cfg.ks) > train.num_items:
            raise ValueError(
                f"the validation cutoffs ks={cfg.ks} (with metric {cfg.metric!r}) exceed the "
                f"catalogue of {train.num_items} items; use cutoffs <= {train.num_items}."
            )
        return valid

    @torch.no_grad()
    def _validate(self, valid: UserItemIndex, train: UserItemIndex, triples) -> dict:
        model = self.model
        model.parameters_changed()
        record: dict[str, Any] = {"val_loss": float("nan")}
        if triples is not None and triples[0].numel():
            record["val_loss"] = float(model.loss(*triples))
        metrics = model.evaluate(valid, exclude=train)
        record.update({k: v for k, v in metrics.items() if k != "users"})
        return record

    def _diverged(self, last_good, epoch: int, why: str) -> None:
        """Put back the parameters from the start of ``epoch`` and raise TrainingDiverged."""
        from .model import TrainingDiverged

        model = self.model
        with torch.no_grad():
            for p, saved in zip(model.parameters(), last_good):
                p.copy_(saved)
                p.grad = None
        model.parameters_changed()
        if self.last_checkpoint is not None:
            path, at = self.last_checkpoint
            kept = f"the last checkpoint, {path!r} (epoch {at}), is untouched"
        else:
            kept = "no checkpoint was written"
        cfg = model.config
        raise TrainingDiverged(
            f"training diverged at epoch {epoch} ({why}). The model holds the embeddings "
            f"from the start of that epoch; {kept}. Lower learning_rate (now "
            f"{cfg.learning_rate}) or raise reg (now {cfg.reg})."
        )

    # ------------------------------------------------------------------ checkpoints
    def _save(self, best: list[torch.Tensor], valid_fp: str) -> None:
        """Write everything the rest of the run depends on, so a resume is bit-identical."""
        arrays = training_arrays(
            self.model, self.optimizer, self.scheduler, self.generator, asdict(self.state),
            best, valid_fp,
        )  # fmt: skip
        atomic_write_npz(self.checkpoint_path, arrays)

    def _restore(self, path, valid_fp: str) -> list[torch.Tensor]:
        state, best = read_training_state(
            path, self.model, self.optimizer, self.scheduler, self.generator, valid_fp
        )
        self.state = TrainState(**state)
        return best


#: What the trainer calls on a strategy (SingleProcess's interface).
STRATEGY_METHODS = ("is_writer", "setup", "shard", "reduce_gradients", "reduce_sum",
                    "on_writer", "finish")  # fmt: skip


def _divergence(loss: float, model: Any, opt: torch.optim.Optimizer) -> str:
    """Why the run cannot go on after an epoch, or ``""``."""
    problem = model.divergence()
    if problem:
        return problem
    for state in opt.state.values():
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and not bool(torch.isfinite(value).all()):
                return f"the optimizer's {key!r} became NaN or infinite"
    if not math.isfinite(loss):
        return f"the loss is {loss}"
    return ""


def _use_cuda_graph(cfg: Any, device: torch.device, strategy: Any) -> bool:
    """CUDA graphs for single-process CUDA runs, unless ``cuda_graph="off"``."""
    if cfg.cuda_graph == "off" or device.type != "cuda":
        return False
    return isinstance(strategy, SingleProcess) and strategy.world_size == 1


def model_fingerprint(ui: UserItemIndex) -> str:
    from .persistence import fingerprint

    return fingerprint(ui)
