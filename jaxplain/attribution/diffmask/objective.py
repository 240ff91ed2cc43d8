r"""DiffMask's constrained objective and the masked forward pass through the model's taps.

For a batch and a layer index :math:`\ell`, gates :math:`z` replace masked states by a baseline
:math:`b`, :math:`\hat h = z h + (1 - z) b`, and the model runs on. The objective is

.. math::
  \max_{\lambda \in [0, \lambda_{max}]} \min_{\phi, b}\;
  \frac1B \sum_n \Big(\lambda_\ell \big(\mathrm{KL}(p_n \| \hat p_n) - m\big)
  + \frac{\sum_t \mathrm{mask}_{nt}\, \log P(z_{nt} \neq 0)}{\sum_t \mathrm{mask}_{nt}}\Big)

with one Lagrange multiplier per index (gradient ascent, clipped to ``[0, 200]``), the forward
KL from the original prediction ``p`` to the masked one, margin ``m``, and the authors' penalty on
the mean *log* keep probability (``penalty="log_l0"``, their code; issue diffmask#7). The paper's
expected L0 (the mean keep probability itself) is ``penalty="l0"``.

The input variant masks index 0 (word embeddings, before position/segment embeddings) with the
product of the votes of probes ``0..ell``; the hidden variant masks index ``ell`` with probe
``ell``'s gates and that index's own baseline. Index ``k >= 1`` goes in through
``Taps(hidden_delta=...)``: the masked state is the original plus ``(1 - z)(b - h)``, added at
index ``ell`` only (a one-hot over layers), so a traced ``ell`` needs no branch and one compiled
step serves every layer. The layers below ``ell`` are recomputed unchanged; their values equal the
unmasked pass's.
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from jaxplain.attribution.diffmask import gates as hc
from jaxplain.attribution.diffmask.probes import Gates, probe_logits, probe_logits_at
from jaxplain.contracts import Batch, Forward, Outputs, Params, Taps
from jaxplain.errors import InputError

PENALTIES = ("log_l0", "l0")
LAMBDA_MAX = 200.0
"""Upper clip of the Lagrange multipliers (authors)."""


def check_margin(margin: float) -> float:
  """Raises :class:`InputError` unless ``margin > 0`` (a KL budget of 0 forbids any mask)."""
  try:
    m = float(margin)
  except (TypeError, ValueError):
    raise InputError(f"margin must be a positive number, got {margin!r}.") from None
  if not m > 0 or m != m or m == float("inf"):
    raise InputError(f"margin must be > 0 and finite (the KL budget the masked prediction may "
                     f"use), got {margin!r}; the authors use 0.1 for SST, 0.05 for the toy task.")
  return m


def pad_to(x: Float[Array, "... D"], width: int) -> Float[Array, "... W"]:
  """Zero-pads the last axis to ``width``."""
  extra = width - x.shape[-1]
  return x if extra == 0 else jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, extra)])


def model_states(forward: Forward, params: Params, batch: Batch, width: int
                 ) -> tuple[Outputs, Float[Array, "K B T W"]]:
  """The unmasked pass: ``Outputs`` and the ``K = L + 2`` states DiffMask reads, padded to ``W``."""
  out = forward(params, batch, Taps())
  states = jnp.concatenate([pad_to(out.word_embeddings, width)[None], pad_to(out.hidden, width)])
  return out, jax.lax.stop_gradient(states.astype(jnp.float32))


def gate_logits(gates: Gates, states: Float[Array, "K B T W"]) -> Float[Array, "K B T"]:
  """Every probe's logits on its own input (``[h0; hk]`` for input gates, ``hk`` for hidden)."""
  if gates.variant == "input":
    e = gates.embedding_size
    h0 = jnp.broadcast_to(states[:1, ..., :e], states.shape[:-1] + (e,))
    return probe_logits(gates.probes, jnp.concatenate([h0, states], -1))
  return probe_logits(gates.probes, states)


def log_keep(gates: Gates, states: Float[Array, "K B T W"]) -> Float[Array, "K B T"]:
  """``log P(token t kept when probing at index k)`` for every ``k``: ``[K, B, T]``.

  Input variant: the running sum over ``k' <= k`` (a token dropped by any probe stays dropped);
  hidden variant: each index on its own.
  """
  lp = hc.log_expected_l0(gate_logits(gates, states))
  return jnp.cumsum(lp, axis=0) if gates.variant == "input" else lp


def masked_logits(forward: Forward, params: Params, batch: Batch, gates: Gates,
                  states: Float[Array, "K B T W"], layer: Int[Array, ""], key: PRNGKeyArray
                  ) -> tuple[Float[Array, "B C"], Float[Array, "B T"], Float[Array, "B T"]]:
  """One stochastic masked pass at index ``layer`` (traced).

  Returns:
    ``(logits [B, C], log_keep [B, T], z [B, T])``: the masked model's logits, the log keep
    probability of each token at ``layer`` and the sampled gates.
  """
  e, h = gates.embedding_size, gates.hidden_size
  if gates.variant == "input":
    alpha = gate_logits(gates, states)                                      # [K B T]
    votes, lps = hc.sample(key, alpha), hc.log_expected_l0(alpha)
    z, lp = jnp.ones_like(votes[0]), jnp.zeros_like(lps[0])
    for k in range(alpha.shape[0]):  # product of the votes k <= layer (unrolled; K is small)
      z = z * jnp.where(k <= layer, votes[k], 1.0)
      lp = lp + jnp.where(k <= layer, lps[k], 0.0)
    words = z[..., None] * states[0, ..., :e] + (1.0 - z[..., None]) * gates.baseline[0]
    logits = forward(params, batch, Taps(word_embeddings=words)).logits
    return logits, lp, z
  x = jax.lax.dynamic_index_in_dim(states, layer, 0, keepdims=False)       # [B T W]
  alpha = probe_logits_at(gates.probes, layer, x)
  z = hc.sample(key, alpha)
  lp = hc.log_expected_l0(alpha)
  b = jax.lax.dynamic_index_in_dim(gates.baseline, layer, 0, keepdims=False)
  delta = (1.0 - z[..., None]) * (b - x)          # z x + (1 - z) b  =  x + delta
  words = states[0, ..., :e] + jnp.where(layer == 0, delta[..., :e], 0.0)
  at = jax.nn.one_hot(layer - 1, gates.num_layers + 1, dtype=jnp.float32)  # zeros when layer == 0
  hidden_delta = at[:, None, None, None] * delta[None, ..., :h]
  logits = forward(params, batch, Taps(word_embeddings=words, hidden_delta=hidden_delta)).logits
  return logits, lp, z


def kl_divergence(logits_p: Float[Array, "B C"], logits_q: Float[Array, "B C"]) -> Float[Array, " B"]:
  """``KL(softmax(p) || softmax(q))`` per example, float32."""
  lp = jax.nn.log_softmax(logits_p.astype(jnp.float32), -1)
  lq = jax.nn.log_softmax(logits_q.astype(jnp.float32), -1)
  return jnp.sum(jnp.exp(lp) * (lp - lq), axis=-1)


def masked_mean(x: Float[Array, "B T"], mask: Int[Array, "B T"]) -> Float[Array, " B"]:
  m = (mask > 0).astype(jnp.float32)
  return jnp.sum(x * m, -1) / jnp.maximum(jnp.sum(m, -1), 1.0)


def lagrangian(logits0: Float[Array, "B C"], logits: Float[Array, "B C"],
               lp: Float[Array, "B T"], mask: Int[Array, "B T"], lam: Float[Array, ""],
               margin: float, penalty: str = "log_l0"
               ) -> tuple[Float[Array, ""], dict[str, Float[Array, ""]]]:
  """The per-batch Lagrangian ``mean(lam * (KL - margin) + penalty)`` and its parts.

  Returns:
    ``(loss, aux)`` with ``aux`` holding ``constraint`` (mean ``KL - margin``), ``kl``, ``l0``
    (mean keep probability), ``agreement`` (argmax masked == argmax original).
  """
  kl = kl_divergence(logits0, logits)
  constraint = kl - margin
  pen = masked_mean(lp if penalty == "log_l0" else jnp.exp(lp), mask)
  loss = jnp.mean(lam * constraint + pen)
  aux = {"constraint": jnp.mean(constraint), "kl": jnp.mean(kl),
         "l0": jnp.mean(masked_mean(jnp.exp(lp), mask)),
         "agreement": jnp.mean((jnp.argmax(logits, -1) == jnp.argmax(logits0, -1))
                               .astype(jnp.float32))}
  return loss, aux


def lambda_gradient(constraint: Float[Array, ""], layer: Int[Array, ""],
                    num_states: int) -> Float[Array, " K"]:
  """The *descent* gradient that makes an optax minimiser *ascend* the Lagrangian in ``lam``.

  ``d loss / d lam_ell = mean(KL - margin)``; ascent means following ``+constraint``, so the
  minimiser receives ``-constraint`` at ``ell`` and 0 elsewhere: a violated constraint
  (KL > margin) raises ``lam_ell``, a slack one lowers it.
  """
  return -constraint * jax.nn.one_hot(layer, num_states, dtype=jnp.float32)


def clip_lambda(lam: Float[Array, " K"], max_value: float = LAMBDA_MAX) -> Float[Array, " K"]:
  """Projects the multipliers onto ``[0, max_value]`` (authors: ``[0, 200]``)."""
  return jnp.clip(lam, 0.0, max_value)
