"""Hyperparameters of LightGCN training, shared by the Python API and the CLI."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Optional

from ._checks import InvalidType, InvalidValue, check_choice, check_float, check_int, check_ks
from .adjacency import NODE_ORDERS
from .metrics import METRICS
from .propagation import DTYPES, KERNELS, check_norms, layer_weights

SAMPLING = ("interactions", "users")
CUDA_GRAPH = ("auto", "on", "off")


def _field(default: Any, help: str) -> Any:  # noqa: A002 - the CLI's word for it
    """A dataclass field whose description the CLI shows as the option's help."""
    return field(default=default, metadata={"help": help})


@dataclass
class Config:
    """LightGCN hyperparameters; each field's ``help`` (its metadata) is its description,
    shown by ``lightgcn-sparse train --help``.

    Defaults are RecBole 1.2.1's LightGCN settings on ml-100k except the learning rate:
    5e-3 was chosen over 1e-3 and 1e-2 by validation NDCG@20 on ml-100k (README).
    ``norm_left``, ``norm_right`` and ``layer_norm`` are LightGCN++'s options (see
    :func:`~lightgcn_sparse.propagation.propagate`); their defaults are plain LightGCN, and
    the ``"lightgcnpp"`` preset sets the paper's recommended values.
    """

    embedding_dim: int = _field(
        64, "Width d of the layer-0 embeddings, the only trained parameters."
    )
    num_layers: int = _field(
        3, "Number K of propagation rounds (0: plain BPR matrix factorization)."
    )
    alpha: Optional[tuple[float, ...]] = _field(
        None, "Weight of each layer 0..K in the final embedding; None: 1/(K+1) each."
    )
    norm_left: float = _field(
        0.5, "LightGCN++ alpha in [-1, 1]: the entry of user u and item i in u's row is "
        "d_u^-norm_left d_i^-norm_right; 0.5 and 0.5 are LightGCN's D^-1/2 A D^-1/2.",
    )
    norm_right: float = _field(0.5, "LightGCN++ beta in [-1, 1] (see norm_left).")
    layer_norm: bool = _field(
        False, "LightGCN++: L2-normalize the rows of each layer's input before propagating."
    )
    learning_rate: float = _field(5e-3, "Adam step size.")
    lr_decay: float = _field(1.0, "Multiply the learning rate by this after every epoch.")
    reg: float = _field(1e-4, "Lambda of the L2 term on the batch's layer-0 embeddings.")
    batch_size: int = _field(
        2048, "BPR triples per optimizer step (each step propagates the whole graph)."
    )
    epochs: int = _field(300, "Most epochs to train; early stopping usually ends sooner.")
    batches_per_epoch: Optional[int] = _field(
        None, "Steps per epoch; None: one pass over the training interactions."
    )
    sampling: str = _field(
        "interactions",
        "How triples are drawn: 'interactions' (a shuffled pass over them, so each user as "
        "often as it has items) or 'users' (users uniformly, as the reference code does).",
    )
    init_std: float = _field(0.1, "The layer-0 embeddings start as N(0, init_std^2).")
    eval_every: int = _field(1, "Evaluate the held-out data every this many epochs.")
    patience: int = _field(
        10, "Stop after this many evaluations without improvement (0: never stop early)."
    )
    metric: str = _field(
        "ndcg@20", "Held-out metric that chooses the kept epoch, e.g. 'ndcg@20', 'recall@20'."
    )
    ks: tuple[int, ...] = _field((10, 20), "Cutoffs of the metrics computed at each evaluation.")
    seed: int = _field(2020, "Seeds the initialization and every sampling draw.")
    device: str = _field("cpu", "Where to train: 'cpu', 'cuda' or 'cuda:N'.")
    kernel: str = _field(
        "auto",
        "Sparse product: 'auto' (the measured fastest per device), 'embedding_bag', 'sparse_mm'.",
    )
    propagation_dtype: str = _field(
        "float32",
        "Dtype of the rows each sparse product gathers: 'bfloat16' or 'float16' halve its "
        "bytes; layer sums, parameters and Adam stay float32.",
    )
    node_order: str = _field(
        "none",
        "Node order the products run in ('degree', 'rcm', 'balanced'); invisible outside, "
        "results equal up to float rounding.",
    )
    cuda_graph: str = _field(
        "auto",
        "Replay the CUDA training step from a CUDA graph: 'auto' (when measured "
        "faster), 'on' or 'off'.",
    )
    extra: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "Free-form notes saved with the model (the CLI records its data)."},
    )

    def validate(self) -> Config:
        """Check every field; return ``self`` or raise ``ValueError``/``TypeError``."""
        check_int("embedding_dim", self.embedding_dim, low=1)
        check_int("num_layers", self.num_layers, low=0)
        if self.alpha is not None:
            self.alpha = tuple(layer_weights(self.num_layers, self.alpha))
        self.norm_left, self.norm_right, self.layer_norm = check_norms(
            self.norm_left, self.norm_right, self.layer_norm
        )
        check_float("learning_rate", self.learning_rate, low=0.0, low_open=True)
        check_float("lr_decay", self.lr_decay, low=0.0, high=1.0, low_open=True)
        check_float("reg", self.reg, low=0.0)
        check_int("batch_size", self.batch_size, low=1)
        check_int("epochs", self.epochs, low=0)
        if self.batches_per_epoch is not None:
            check_int("batches_per_epoch", self.batches_per_epoch, low=1)
        check_choice("sampling", self.sampling, SAMPLING)
        check_float("init_std", self.init_std, low=0.0, low_open=True)
        check_int("eval_every", self.eval_every, low=1)
        check_int("patience", self.patience, low=0)
        self.ks = check_ks(self.ks)
        name, _, k = str(self.metric).partition("@")
        if name not in METRICS or not k.isdigit() or int(k) < 1:
            raise InvalidValue(
                "metric",
                f"metric must look like 'ndcg@20' with a name in {METRICS}. Got {self.metric!r}.",
            )
        if int(k) not in self.ks:
            self.ks = tuple(sorted({*self.ks, int(k)}))
        check_int("seed", self.seed, low=0, high=2**63 - 1)  # torch.manual_seed's range
        if not isinstance(self.extra, dict):
            raise InvalidType("extra", f"extra must be a dict. Got {type(self.extra).__name__}.")
        try:  # saved with the model as JSON: fail here, not after training, at save()
            json.dumps(self.extra, sort_keys=True)  # as the model file stores it
        except (TypeError, ValueError) as err:
            raise InvalidValue("extra", f"extra must be JSON-serializable ({err}).") from err
        check_choice("kernel", self.kernel, ("auto", *KERNELS))
        check_choice("propagation_dtype", self.propagation_dtype, tuple(DTYPES))
        check_choice("node_order", self.node_order, NODE_ORDERS)
        check_choice("cuda_graph", self.cuda_graph, CUDA_GRAPH)
        if not isinstance(self.device, str):
            self.device = str(self.device)
        return self

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes`` applied; unknown names raise ``TypeError``."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise TypeError(f"unknown Config field(s) {unknown}; known: {sorted(names)}.")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["alpha"] = list(self.alpha) if self.alpha is not None else None
        d["ks"] = list(self.ks)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Inverse of :meth:`to_dict`; ignores no key silently (unknown keys raise)."""
        data = dict(data)
        if data.get("alpha") is not None:
            data["alpha"] = tuple(data["alpha"])
        if "ks" in data:
            data["ks"] = tuple(data["ks"])
        return cls().replace(**data).validate()

    def steps_per_epoch(self, num_interactions: int) -> int:
        """Batches in one epoch for ``num_interactions`` training interactions."""
        if self.batches_per_epoch is not None:
            return self.batches_per_epoch
        return max(1, math.ceil(num_interactions / self.batch_size))


def gamma_weights(num_layers: int, gamma: float = 0.2) -> tuple[float, ...]:
    """LightGCN++'s layer weights ``gamma E0 + (1 - gamma) mean_{k=1..K} Ek`` as ``alpha``:
    ``(gamma, (1 - gamma) / K, ..., (1 - gamma) / K)``; ``(1.0,)`` for K = 0."""
    num_layers = check_int("num_layers", num_layers)
    gamma = check_float("gamma", gamma, low=0.0, high=1.0)
    if num_layers == 0:
        return (1.0,)
    return (gamma,) + ((1.0 - gamma) / num_layers,) * num_layers


#: Named configurations. ``"cs224w"`` is the Stanford CS224W LightGCN tutorial's setup:
#: batch 256, 50 epochs of 200 user-uniform batches, lr 1e-3 decayed by 0.9 per epoch,
#: lambda 1e-6, d = 32, K = 3, evaluated at K = 20. ``"lightgcnpp"`` is LightGCN++ with the
#: paper's recommended alpha 0.6, beta -0.1, gamma 0.2 (Lee et al., RecSys 2024) on the
#: default settings; given another ``num_layers`` (and no ``alpha``), its layer weights follow.
PRESETS: dict[str, Config] = {
    "default": Config(),
    "recbole": Config(
        embedding_dim=64, num_layers=3, learning_rate=1e-3, reg=1e-4, batch_size=2048
    ),
    "cs224w": Config(
        embedding_dim=32,
        num_layers=3,
        learning_rate=1e-3,
        lr_decay=0.9,
        reg=1e-6,
        batch_size=256,
        epochs=50,
        batches_per_epoch=200,
        sampling="users",
        patience=0,
        metric="recall@20",
        ks=(20,),
    ),
    "lightgcnpp": Config(
        num_layers=3, alpha=gamma_weights(3), norm_left=0.6, norm_right=-0.1, layer_norm=True
    ),
}
#: Presets whose layer weights are a rule of ``num_layers`` (applied when only K changes).
_LAYER_RULES = {"lightgcnpp": gamma_weights}


def preset(name: str, **changes: Any) -> Config:
    """A copy of the named preset with ``changes`` applied."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}. Got {name!r}.")
    if name in _LAYER_RULES and "num_layers" in changes and "alpha" not in changes:
        changes["alpha"] = _LAYER_RULES[name](changes["num_layers"])
    return PRESETS[name].replace(**changes).validate()
