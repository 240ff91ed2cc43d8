r"""Rank agreement between two explanations of the same inputs, per example.

Spearman's :math:`\rho` (Pearson correlation of average ranks) and Kendall's :math:`\tau_b`
(ties corrected, as ``scipy.stats.kendalltau``'s default), computed over each example's real,
non-special tokens only. Both are pure ``jnp``, ``O(T^2)`` per example, and NaN when either
explanation is constant over the example.
"""

import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from jaxplain.contracts import Batch
from jaxplain.metrics._removal import check_scores, removable_mask


def _average_ranks(x, valid):
  less = (valid[:, None, :] & (x[:, None, :] < x[:, :, None])).sum(-1)
  equal = (valid[:, None, :] & (x[:, None, :] == x[:, :, None])).sum(-1)
  return less + (equal + 1) / 2.0


def spearman(a: Float[Array, "B T"], b: Float[Array, "B T"],
             valid: Bool[Array, "B T"]) -> Float[Array, " B"]:
  """Spearman's rho per example over ``valid`` positions (ties get average ranks)."""
  a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
  ra, rb = _average_ranks(a, valid), _average_ranks(b, valid)
  n = jnp.maximum(valid.sum(-1, keepdims=True), 1)
  ca = jnp.where(valid, ra - jnp.where(valid, ra, 0).sum(-1, keepdims=True) / n, 0.0)
  cb = jnp.where(valid, rb - jnp.where(valid, rb, 0).sum(-1, keepdims=True) / n, 0.0)
  den = jnp.sqrt((ca ** 2).sum(-1) * (cb ** 2).sum(-1))
  return jnp.where(den > 0, (ca * cb).sum(-1) / jnp.where(den > 0, den, 1.0), jnp.nan)


def kendall_tau_b(a: Float[Array, "B T"], b: Float[Array, "B T"],
                  valid: Bool[Array, "B T"]) -> Float[Array, " B"]:
  r"""Kendall's tau-b per example: :math:`(C - D)/\sqrt{(n_0 - n_1)(n_0 - n_2)}` over valid pairs."""
  a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
  pair = valid[:, :, None] & valid[:, None, :]
  pair &= ~jnp.eye(a.shape[-1], dtype=bool)[None]
  sa = jnp.sign(a[:, :, None] - a[:, None, :])
  sb = jnp.sign(b[:, :, None] - b[:, None, :])
  num = jnp.where(pair, sa * sb, 0.0).sum((-1, -2)) / 2.0
  n = valid.sum(-1).astype(jnp.float32)
  n0 = n * (n - 1) / 2.0
  n1 = (pair & (sa == 0)).sum((-1, -2)) / 2.0
  n2 = (pair & (sb == 0)).sum((-1, -2)) / 2.0
  den = jnp.sqrt((n0 - n1) * (n0 - n2))
  return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), jnp.nan)


def rank_agreement(batch: Batch, scores_a: Float[Array, "B T"], scores_b: Float[Array, "B T"],
                   special_mask: Bool[Array, "B T"] | None = None) -> dict[str, Array]:
  """``{"spearman": [B], "kendall_tau_b": [B]}`` between two explanations of ``batch``.

  Only real, non-special tokens count (``special_mask``, else ``word_ids == -1``).
  """
  check_scores(batch, scores_a, "scores_a")
  check_scores(batch, scores_b, "scores_b")
  valid = removable_mask(batch, special_mask)
  return {"spearman": spearman(scores_a, scores_b, valid),
          "kendall_tau_b": kendall_tau_b(scores_a, scores_b, valid)}
