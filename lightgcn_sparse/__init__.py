"""lightgcn-sparse: LightGCN on torch.sparse CSR, with no PyG and no compiled extensions."""

from .adjacency import normalized_adjacency
from .baseline import Popularity
from .config import PRESETS, Config, preset
from .idmap import IdMap, UnknownIdError
from .loss import bpr_loss, bpr_loss_indexed
from .metrics import evaluate_ranking, topk_scores
from .model import LightGCN, TrainingDiverged
from .propagation import propagate, propagate_rows, spmm
from .recommender import FactorRecommender, NotFittedError
from .sampling import BPRSampler, sample_negatives
from .trainer import Callback, SingleProcess, Trainer
from .user_items import UserItemIndex, UserItems, user_items_from_csr, user_items_from_pairs

__version__ = "0.2.0"

__all__ = [
    "PRESETS",
    "BPRSampler",
    "Callback",
    "Config",
    "FactorRecommender",
    "IdMap",
    "LightGCN",
    "NotFittedError",
    "Popularity",
    "SingleProcess",
    "Trainer",
    "TrainingDiverged",
    "UnknownIdError",
    "UserItemIndex",
    "UserItems",
    "__version__",
    "bpr_loss",
    "bpr_loss_indexed",
    "evaluate_ranking",
    "normalized_adjacency",
    "preset",
    "propagate",
    "propagate_rows",
    "sample_negatives",
    "spmm",
    "topk_scores",
    "user_items_from_csr",
    "user_items_from_pairs",
]
