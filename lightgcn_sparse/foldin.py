r"""New users and items from their interactions, without gradient steps (the fold-in).

A newcomer is treated as a new node joined to its items (a user) or users (an item), and
gets one LightGCN propagation step from the trained final embeddings of those neighbours:

.. math:: e_u = \sum_{i \in L_u} \frac{1}{\sqrt{|L_u|}\sqrt{|N_i| + 1}}\, e_i

(:math:`|N_i|` is the neighbour's training degree, ``+1`` counts the newcomer). With
LightGCN++'s options the step follows the same normalization,
:math:`|L_u|^{-a} (|N_i| + 1)^{-b}`, on row-normalized neighbours when ``layer_norm`` is on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .user_items import UserItemIndex


def fold_in(
    liked: UserItemIndex,
    table: torch.Tensor,
    degree: torch.Tensor,
    norm_left: float = 0.5,
    norm_right: float = 0.5,
    layer_norm: bool = False,
) -> torch.Tensor:
    """Row ``r``: ``sum_{j in liked[r]} table[j] / (sqrt(|liked[r]|) sqrt(degree[j] + 1))``;
    LightGCN++: ``sum_j |liked[r]|^-left (degree[j] + 1)^-right rownorm(table)[j]``."""
    dtype = table.dtype
    deg = liked.degrees().to(dtype).clamp_min(1)  # (n,)
    idx = liked.indices  # (nnz,)
    if (norm_left, norm_right) == (0.5, 0.5):
        w = (deg[liked.row_ids()] * (degree[idx] + 1).to(dtype)).rsqrt()  # (nnz,)
    else:
        w = deg.pow(-norm_left)[liked.row_ids()] * (degree[idx] + 1).to(dtype).pow(-norm_right)
    if layer_norm:
        table = F.normalize(table, dim=1)  # (rows, d)
    # A weighted sum of rows per bag: no atomics (deterministic on CUDA), no slow scatter on CPU.
    return F.embedding_bag(
        idx, table, liked.indptr, mode="sum", per_sample_weights=w, include_last_offset=True
    )  # (n, d)


def padded(degree: torch.Tensor, size: int) -> torch.Tensor:
    """Training degrees, zero for rows added after training."""
    if degree.numel() >= size:
        return degree
    return torch.cat([degree, degree.new_zeros(size - degree.numel())])
