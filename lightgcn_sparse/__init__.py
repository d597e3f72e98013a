"""lightgcn-sparse: LightGCN on torch.sparse CSR, with no PyG and no compiled extensions."""

from .adjacency import normalized_adjacency
from .config import PRESETS, Config, preset
from .interactions import UserItems, user_items_from_csr, user_items_from_pairs
from .loss import bpr_loss
from .metrics import evaluate_ranking, topk_scores
from .model import LightGCN, NotFittedError, TrainingDiverged
from .propagation import propagate, spmm
from .sampling import BPRSampler, sample_negatives

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "BPRSampler",
    "Config",
    "LightGCN",
    "NotFittedError",
    "TrainingDiverged",
    "UserItems",
    "__version__",
    "bpr_loss",
    "evaluate_ranking",
    "normalized_adjacency",
    "preset",
    "propagate",
    "sample_negatives",
    "spmm",
    "topk_scores",
    "user_items_from_csr",
    "user_items_from_pairs",
]
