"""Bayesian Personalized Ranking loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._checks import check_float


def bpr_loss(
    user_emb: torch.Tensor,
    pos_emb: torch.Tensor,
    neg_emb: torch.Tensor,
    layer0: tuple[torch.Tensor, ...] = (),
    reg: float = 0.0,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""BPR loss with L2 regularization of the batch's layer-0 embeddings.

    .. math::
        L = \frac{1}{B} \sum_{b=1}^{B} \operatorname{softplus}(s^-_b - s^+_b)
            + \lambda \, \frac{1}{2B} \sum_{E \in \text{layer0}} \lVert E \rVert_F^2

    with :math:`s^+_b = \langle e_{u_b}, e_{p_b} \rangle` and
    :math:`s^-_b = \langle e_{u_b}, e_{n_b} \rangle` computed from the propagated
    embeddings. :math:`\operatorname{softplus}(x) = \log(1 + e^x) = -\log \sigma(-x)`
    is evaluated stably (no ``log(sigmoid)``). The regularizer is the LightGCN paper's:
    one half of the squared norm of the *layer-0* rows of the batch's users, positives and
    negatives, divided by the batch size.

    Args:
        user_emb, pos_emb, neg_emb: (B, d) final embeddings of the batch.
        layer0: tensors of layer-0 rows to regularize, typically ``(u0, p0, n0)``, each (B, d).
        reg: :math:`\lambda \ge 0`.
        weight: optional (B,) 0/1 mask of the triples that count (a padded batch): the
            means above run over the triples of weight 1 only (none: the loss is 0).

    Returns:
        scalar tensor.
    """
    reg = check_float("reg", reg, low=0.0)
    for name, value in (("user_emb", user_emb), ("pos_emb", pos_emb), ("neg_emb", neg_emb)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor. Got {type(value).__name__}.")
    if not (user_emb.shape == pos_emb.shape == neg_emb.shape) or user_emb.dim() != 2:
        raise ValueError(
            "user_emb, pos_emb and neg_emb must all have shape (B, d). Got "
            f"{tuple(user_emb.shape)}, {tuple(pos_emb.shape)}, {tuple(neg_emb.shape)}."
        )
    if user_emb.shape[0] == 0:
        raise ValueError("the batch is empty: bpr_loss needs at least one triple.")
    batch = user_emb.shape[0]
    if isinstance(layer0, torch.Tensor) or not isinstance(layer0, (tuple, list)):
        kind = type(layer0).__name__
        raise TypeError(f"layer0 must be a tuple of (B, d) tensors, e.g. (u0, p0, n0). Got {kind}.")
    for e in layer0:
        if not isinstance(e, torch.Tensor) or e.dim() != 2 or e.shape[0] != batch:
            raise ValueError(
                f"layer0 must hold ({batch}, d) tensors, one row per triple. "
                f"Got {getattr(e, 'shape', type(e).__name__)}."
            )
    if weight is not None and (not isinstance(weight, torch.Tensor) or weight.shape != (batch,)):
        raise ValueError(
            f"weight must be a ({batch},) tensor, one 0/1 entry per triple. Got {weight!r:.60}."
        )
    pos = (user_emb * pos_emb).sum(-1)  # (B,)
    neg = (user_emb * neg_emb).sum(-1)  # (B,)
    # softplus(neg - pos) as -logsigmoid(pos - neg): F.softplus returns x itself above its
    # threshold of 20, off by up to e^-20 (1e-10 relative in float64); logsigmoid is exact.
    if weight is None:
        loss = -F.logsigmoid(pos - neg).mean()
        if reg and layer0:
            loss = loss + reg * 0.5 * sum(e.pow(2).sum() for e in layer0) / batch
        return loss
    # A device scalar (no host synchronization); a batch whose weights are all 0 counts
    # no triple and gives 0, not 0 / 0.
    count = weight.sum().clamp_min(1)
    loss = -(F.logsigmoid(pos - neg) * weight).sum() / count
    if reg and layer0:
        loss = loss + reg * 0.5 * sum((e.pow(2).sum(-1) * weight).sum() for e in layer0) / count
    return loss


def bpr_loss_indexed(
    table: torch.Tensor,
    index: torch.Tensor,
    layer0: torch.Tensor | None = None,
    reg: float = 0.0,
) -> torch.Tensor:
    r""":func:`bpr_loss` of triples given as rows of one table: what a training step computes.

    Equal (up to rounding) to ``bpr_loss(*table[index].chunk(3), layer0[index].chunk(3),
    reg)``, but the (3B, d) gathered rows and their gradients never pass through autograd's
    indexing: the backward writes the triples' (3B, d) gradient once and sums it into the
    table's rows in one ``embedding_bag`` over the triples sorted by row (stable, so each
    row adds its occurrences in batch order: deterministic, the same sums as
    ``F.embedding``'s backward, several times faster on CPU). The L2 term is
    :math:`\frac{\lambda}{2B} \sum_r c_r \lVert x_r \rVert^2` with ``c_r`` the occurrences
    of row ``r`` in ``index``: the same value as summing over the batch's repeated rows,
    computed without gathering them.

    Args:
        table: (M, d) final embeddings.
        index: (3B,) int64 rows of ``table``: the users, then the positives, then the
            negatives.
        layer0: optional (M, d) layer-0 embeddings of the same rows as ``table``.
        reg: :math:`\lambda \ge 0`.

    Returns:
        scalar tensor.
    """
    reg = check_float("reg", reg, low=0.0)
    for name, value in (("table", table), ("index", index), ("layer0", layer0)):
        if not isinstance(value, torch.Tensor) and not (name == "layer0" and value is None):
            raise TypeError(f"{name} must be a torch.Tensor. Got {type(value).__name__}.")
    if index.device != table.device or (layer0 is not None and layer0.device != table.device):
        raise ValueError("table, index and layer0 must be on one device.")
    if table.dim() != 2:
        raise ValueError(f"table must have shape (M, d). Got {tuple(table.shape)}.")
    if index.dim() != 1 or index.dtype != torch.int64 or index.numel() % 3:
        raise ValueError(
            "index must be a 1-D int64 tensor of 3B rows (users, positives, negatives). "
            f"Got shape {tuple(index.shape)}, dtype {index.dtype}."
        )
    if index.numel() == 0:
        raise ValueError("the batch is empty: bpr_loss_indexed needs at least one triple.")
    if layer0 is not None and layer0.shape != table.shape:
        raise ValueError(
            f"layer0 must have the table's shape {tuple(table.shape)}. Got {tuple(layer0.shape)}."
        )
    rows = table.shape[0]
    if int(index.min()) < 0 or int(index.max()) >= rows:
        raise ValueError(f"index must lie in [0, {rows}), the table's rows.")
    order = torch.sort(index, stable=True).indices  # (3B,): the triples' rows, grouped by row
    counts = torch.bincount(index, minlength=rows)  # (M,)
    offsets = torch.zeros(rows + 1, dtype=torch.int64, device=index.device)
    torch.cumsum(counts, 0, out=offsets[1:])
    loss = _IndexedBPR.apply(table, index, order, offsets)
    if reg and layer0 is not None:
        batch = index.numel() // 3
        loss = loss + _WeightedSquares.apply(layer0, counts.to(layer0.dtype)) * (reg * 0.5 / batch)
    return loss


class _IndexedBPR(torch.autograd.Function):
    """Mean of ``softplus(<e_u, e_n> - <e_u, e_p>)`` over rows ``index`` of ``table``."""

    @staticmethod
    def forward(ctx, table, index, order, offsets):  # type: ignore[override]
        rows = table.index_select(0, index).view(3, -1, table.shape[1])  # (3, B, d)
        eu, ep, en = rows
        gap = ep - en  # (B, d)
        diff = torch.linalg.vecdot(eu, gap)  # (B,): <e_u, e_p> - <e_u, e_n>
        ctx.save_for_backward(eu, gap, diff, order, offsets)
        return -F.logsigmoid(diff).mean()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):  # type: ignore[override]
        eu, gap, diff, order, offsets = ctx.saved_tensors
        # d/d diff of -logsigmoid(diff)/B is -sigmoid(-diff)/B =: -s, (B, 1)
        s = (torch.sigmoid(-diff) * (grad / diff.numel())).unsqueeze(1)
        g = eu.new_empty((3, *eu.shape))  # (3, B, d): the triples' gradients, written once
        torch.mul(gap, -s, out=g[0])  # users: -s (e_p - e_n)
        torch.mul(eu, -s, out=g[1])  # positives
        torch.mul(eu, s, out=g[2])  # negatives
        grad_table = F.embedding_bag(order, g.view(-1, g.shape[2]), offsets, mode="sum",
                                     include_last_offset=True)  # fmt: skip
        return grad_table, None, None, None


class _WeightedSquares(torch.autograd.Function):
    """``sum_r w_r ||x_r||^2`` for (M, d) ``x`` and (M,) weights ``w``; one pass back."""

    @staticmethod
    def forward(ctx, x, w):  # type: ignore[override]
        ctx.save_for_backward(x, w)
        return torch.dot(torch.linalg.vector_norm(x, dim=1).square(), w)  # one read of x

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):  # type: ignore[override]
        x, w = ctx.saved_tensors
        return x * (w * (2 * grad)).unsqueeze(1), None
