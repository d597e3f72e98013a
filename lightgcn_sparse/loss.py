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
            means above run over the triples of weight 1 only.

    Returns:
        scalar tensor.
    """
    reg = check_float("reg", reg, low=0.0)
    if not (user_emb.shape == pos_emb.shape == neg_emb.shape) or user_emb.dim() != 2:
        raise ValueError(
            "user_emb, pos_emb and neg_emb must all have shape (B, d). Got "
            f"{tuple(user_emb.shape)}, {tuple(pos_emb.shape)}, {tuple(neg_emb.shape)}."
        )
    if user_emb.shape[0] == 0:
        raise ValueError("the batch is empty: bpr_loss needs at least one triple.")
    batch = user_emb.shape[0]
    pos = (user_emb * pos_emb).sum(-1)  # (B,)
    neg = (user_emb * neg_emb).sum(-1)  # (B,)
    # softplus(neg - pos) as -logsigmoid(pos - neg): F.softplus returns x itself above its
    # threshold of 20, off by up to e^-20 (1e-10 relative in float64); logsigmoid is exact.
    if weight is None:
        loss = -F.logsigmoid(pos - neg).mean()
        if reg and layer0:
            loss = loss + reg * 0.5 * sum(e.pow(2).sum() for e in layer0) / batch
        return loss
    count = weight.sum()  # a device scalar: no host synchronization
    loss = -(F.logsigmoid(pos - neg) * weight).sum() / count
    if reg and layer0:
        loss = loss + reg * 0.5 * sum((e.pow(2).sum(-1) * weight).sum() for e in layer0) / count
    return loss
