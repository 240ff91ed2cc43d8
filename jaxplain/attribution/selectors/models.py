r"""Attention-based interpretation models over a frozen encoder, as pure pytrees.

Two models whose explanation is part of the prediction (Bai et al. 2021 study both kinds):

* **Attention pooling** (``kind="attention"``): :math:`\alpha = \mathrm{softmax}_t(v^\top
  \tanh(W h_t))` over real tokens, :math:`\hat y = U \sum_t \alpha_t h_t + b`; the explanation is
  :math:`\alpha`. The *selector* is ``(W, v)``; the *predictor* is ``(U, b)``.
* **L2X** (``kind="l2x"``, Chen et al. 2018): a selector scores tokens
  :math:`s_t = w_2^\top \tanh(W_1 h_t)`, a relaxed top-k (Gumbel-softmax, :mod:`.relaxed`) picks
  k of them, and an approximator reads **only the selected tokens**:
  :math:`\hat y = U\,\mathrm{mean}_{t \in S} e_t + b`, trained to mimic the black box.

Inputs are cached features of the frozen encoder: ``context [B, T, H]`` (the last hidden state,
which the selector reads) and ``tokens [B, T, H]`` (the non-contextual embedding-layer output,
which the L2X approximator reads, so that a selected token cannot carry its neighbours'
information). This split is our design choice (the paper's exact architectures are not known).
"""

from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from jaxplain.attribution.selectors.relaxed import hard_top_k, relaxed_top_k
from jaxplain.errors import InputError

Params = dict[str, Any]
KINDS = ("attention", "l2x")


def init(kind: str, hidden: int, classes: int, *, key: PRNGKeyArray,
         width: int | None = None) -> Params:
  """Parameters ``{"selector": ..., "predictor": ...}`` for a model of ``kind``."""
  if kind not in KINDS:
    raise InputError(f"unknown interpretation model {kind!r}; use one of {', '.join(KINDS)}.")
  width = width or max(hidden // 4, 8)
  k1, k2, k3 = jax.random.split(key, 3)
  glorot = jax.nn.initializers.glorot_uniform()
  selector = {"W": glorot(k1, (hidden, width)), "v": glorot(k2, (width, 1))[:, 0],
              "c": jnp.zeros((width,))}
  predictor = {"U": glorot(k3, (hidden, classes)), "b": jnp.zeros((classes,))}
  return {"selector": selector, "predictor": predictor}


def token_scores(selector: Params, context: Float[Array, "B T H"],
                 mask: Int[Array, "B T"]) -> Float[Array, "B T"]:
  """Selector logits per token; ``finfo.min`` on padding."""
  s = jnp.tanh(context @ selector["W"] + selector["c"]) @ selector["v"]
  return jnp.where(mask > 0, s, jnp.finfo(jnp.float32).min)


def attention_weights(selector: Params, context, mask) -> Float[Array, "B T"]:
  """Attention pooling weights ``alpha`` (sum to 1 over real tokens)."""
  return jax.nn.softmax(token_scores(selector, context, mask), axis=-1) * (mask > 0)


def predict_from_weights(predictor: Params, features: Float[Array, "B T H"],
                         weights: Float[Array, "B T"], normalise: bool) -> Float[Array, "B C"]:
  """Logits from a weighted pooling of ``features`` (weights renormalised if ``normalise``)."""
  if normalise:
    weights = weights / jnp.maximum(weights.sum(-1, keepdims=True), 1e-6)
  pooled = jnp.einsum("bt,bth->bh", weights, features)
  return pooled @ predictor["U"] + predictor["b"]


def selection(kind: str, selector: Params, context, mask, *, k: int,
              key: PRNGKeyArray | None = None, temperature: float = 0.5,
              train: bool = False) -> Float[Array, "B T"]:
  """The explanation weights: ``alpha`` (attention) or the (relaxed) top-k mask (L2X)."""
  if kind == "attention":
    return attention_weights(selector, context, mask)
  s = token_scores(selector, context, mask)
  if train:
    return relaxed_top_k(s, mask, k, key=key, temperature=temperature)
  return hard_top_k(s, mask, k)


def logits(kind: str, params: Params, context, tokens, mask, *, k: int,
           key: PRNGKeyArray | None = None, temperature: float = 0.5,
           train: bool = False, weights: Float[Array, "B T"] | None = None
           ) -> tuple[Float[Array, "B C"], Float[Array, "B T"]]:
  """``(logits [B, C], explanation weights [B, T])``; ``weights`` overrides the selector."""
  if weights is None:
    weights = selection(kind, params["selector"], context, mask, k=k, key=key,
                        temperature=temperature, train=train)
  if kind == "attention":
    return predict_from_weights(params["predictor"], context, weights, False), weights
  return predict_from_weights(params["predictor"], tokens, weights, True), weights


def check_k(k: int, mask) -> None:
  """Refuses ``k`` larger than the shortest sequence's real tokens (host-side check)."""
  shortest = int(jnp.min(jnp.sum(mask > 0, -1)))
  if k < 1 or k > shortest:
    raise InputError(f"k={k} tokens cannot be selected from a sequence of {shortest} real "
                     f"tokens; pick 1 <= k <= {shortest} or drop the shortest inputs.")
