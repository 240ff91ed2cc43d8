r"""Chefer et al.'s explicit relevance propagation (relprop) through a BERT-family encoder.

Chefer, Gur and Wolf (2021a) propagate relevance with rules that a plain gradient pass cannot
express (a sign-split :math:`\alpha_1\beta_0` rule on linear layers, a renormalised rule on
residual sums), so this module runs the propagation explicitly over cached forward
intermediates. The intermediates the model's :class:`~jaxplain.contracts.Outputs` do not expose
(queries, keys, values, the feed-forward activations) are recomputed by a small pure
re-implementation of one layer that reads the same parameter pytree as the encoder
(``params["layers"][i]["query"]["kernel"]``...); ``layer_forward(...)[-1]`` equals the encoder's
next hidden state (a test checks it). Everything here works on ONE example (``[T, H]``); the
kernels ``vmap`` it over the batch, so the residual rule's sums never mix examples.

Rules (R is relevance, :math:`S = R \oslash Z` with torch ``safe_divide`` semantics):

=============================  ==========================================================
linear (Q, K, V, dense, FFN,   :math:`\alpha_1\beta_0`, no bias: :math:`Z = x^+W^+ + x^-W^-`,
pooler, classifier)            :math:`R_x = x^+ \odot S W^{+\top} + x^- \odot S W^{-\top}`
matmul ``A V`` and ``Q K^T``   z-rule on the product; each operand gets the full R (halved
                               by the caller)
residual add                   z-rule split, then rescaled so that the shares keep the ratio
                               of their absolute sums and sum to :math:`\sum R`
softmax, LayerNorm, GELU,      identity
tanh, dropout
=============================  ==========================================================
"""

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from jaxplain.errors import InputError
from jaxplain.models.rules import ACTIVATION_FNS

STABILIZER = 1e-9  # torch safe_divide's epsilon in the reference code

# The inner activation of each family's sequence-classification head (mirrors the encoder).
HEAD_ACTIVATION = {"bert": "tanh", "roberta": "tanh", "electra": "gelu", "distilbert": "relu"}


def sdiv(a, b):
  """``a / (b + 1e-9)`` where ``b != 0``, else 0 (the reference ``safe_divide``)."""
  nonzero = b != 0
  return jnp.where(nonzero, a / jnp.where(nonzero, b + STABILIZER, 1.0), 0.0)


def relprop_linear(x, w, r):
  r"""α1β0 rule for ``y = x @ w`` (``w`` stored ``[in, out]``), bias ignored.

  Args:
    x: ``[..., in]`` the layer's input.
    w: ``[in, out]`` kernel.
    r: ``[..., out]`` relevance of the output.
  Returns:
    ``[..., in]`` relevance of the input.
  """
  wp, wn = jnp.maximum(w, 0.0), jnp.minimum(w, 0.0)
  xp, xn = jnp.maximum(x, 0.0), jnp.minimum(x, 0.0)
  s = sdiv(r, xp @ wp + xn @ wn)
  return xp * (s @ wp.T) + xn * (s @ wn.T)


def relprop_matmul(a, b, r):
  """z-rule for ``z = a @ b`` (batched): both operands get the full relevance ``r``."""
  s = sdiv(r, a @ b)
  return a * (s @ jnp.swapaxes(b, -1, -2)), b * (jnp.swapaxes(a, -1, -2) @ s)


def relprop_add(a, b, r, token_axis: int = 0, slots=None):
  """Residual rule for ``z = a + b``: z-rule shares rescaled to ``|Σa| : |Σb|`` of ``Σr``.

  The sums run over the whole array of ONE example (the reference sums over its batch of 1).
  In a packed row (``slots [T, S]``, :meth:`jaxplain.Packing.slot_mask` of the row) they run
  over each example's own tokens, read along ``token_axis`` (the query axis of ``[N, T, T]``
  attention scores), so every example is rescaled as it is alone.
  """
  s = sdiv(r, a + b)
  ra, rb = a * s, b * s
  if slots is None:
    total = lambda x: x.sum()
    spread = lambda v: v
  else:
    others = tuple(i for i in range(a.ndim) if i != token_axis)
    total = lambda x: x.sum(others) @ slots                                # [S]
    spread = lambda v: jnp.expand_dims(slots @ v, others)                  # [T] on token_axis
  sa, sb, tr = total(ra), total(rb), total(r)
  den = jnp.abs(sa) + jnp.abs(sb)
  fa = sdiv(jnp.abs(sa), den) * tr
  fb = sdiv(jnp.abs(sb), den) * tr
  return ra * spread(sdiv(fa, sa)), rb * spread(sdiv(fb, sb))


def _plain_layer_norm(x, scale, bias, eps):
  mean = x.mean(-1, keepdims=True)
  centered = x - mean
  var = jnp.mean(centered * centered, -1, keepdims=True)
  return centered * jax.lax.rsqrt(var + eps) * scale + bias


class LayerCache(NamedTuple):
  """One layer's forward intermediates for one example (``N`` heads, ``D`` head dim)."""
  x: Any        # [T, H] layer input
  q: Any        # [N, T, D]
  k: Any        # [N, T, D]
  v: Any        # [N, T, D]
  scores: Any   # [N, T, T] q k^T / sqrt(D), before the mask bias
  bias: Any     # [N, T, T] additive mask bias (broadcast)
  probs: Any    # [N, T, T]
  ctx: Any      # [T, H] merged context
  dense: Any    # [T, H] attention output projection (with bias)
  y1: Any       # [T, H] after the attention LayerNorm
  pre: Any      # [T, I] feed-forward input projection
  act: Any      # [T, I] activation
  ffn: Any      # [T, H] feed-forward output projection
  out: Any      # [T, H] layer output


def encoder_config(forward, params):
  """The :class:`EncoderConfig` behind a jaxplain ``forward`` (``make_forward(graphdef)``)."""
  graphdef = getattr(forward, "graphdef", None)
  if not isinstance(graphdef, nnx.GraphDef):
    raise InputError("Chefer relevance (gae, mask_lrp, partial_lrp, full_lrp) re-computes the "
                     "encoder's intermediates, so it needs a jaxplain model's forward (from "
                     "load_model, default_model or make_forward), not an arbitrary function.")
  return nnx.merge(graphdef, params).config


def check_supported(config) -> None:
  """Raises :class:`InputError` for models the explicit relprop does not cover."""
  if config.head != "sequence_classification":
    raise InputError(
        f"Chefer relevance (gae, mask_lrp, partial_lrp, full_lrp) is implemented for sequence "
        f"classification heads of {', '.join(HEAD_ACTIVATION)}; this model has a "
        f"{config.head!r} head. Use attnlrp or cp_lrp (any head) instead.")
  if config.family not in HEAD_ACTIVATION:
    raise InputError(f"Chefer relevance has no rules for the {config.family!r} family; "
                     f"supported: {', '.join(HEAD_ACTIVATION)}.")


def layer_forward(lp, x, mask_bias, num_heads: int, eps: float, activation: str) -> LayerCache:
  """One post-LN encoder layer for one example, keeping every intermediate.

  Args:
    lp: the layer's parameters as a plain dict (``nnx.to_pure_dict(params)["layers"][i]``).
    x: ``[T, H]`` the layer's input (``Outputs.hidden[i][b]``).
    mask_bias: ``[T]`` additive key bias (0 on attended keys, ``finfo.min`` elsewhere), or
      ``[T, T]`` per query (a packed row: each example's tokens attend to their own).
    num_heads, eps, activation: from the model's config.
  Returns:
    A :class:`LayerCache`; ``.out`` is the layer's output ``[T, H]``.
  """
  t, h = x.shape
  d = h // num_heads
  dense = lambda name, y: y @ lp[name]["kernel"] + lp[name]["bias"]
  heads = lambda y: y.reshape(t, num_heads, d).transpose(1, 0, 2)
  q, k, v = heads(dense("query", x)), heads(dense("key", x)), heads(dense("value", x))
  scores = (q @ k.transpose(0, 2, 1)) / math.sqrt(d)
  key_bias = mask_bias[None, None, :] if mask_bias.ndim == 1 else mask_bias[None]
  bias = jnp.broadcast_to(key_bias, scores.shape)
  probs = jax.nn.softmax(scores + bias, axis=-1)
  ctx = (probs @ v).transpose(1, 0, 2).reshape(t, h)
  attn = dense("attn_out", ctx)
  y1 = _plain_layer_norm(attn + x, lp["attn_norm"]["scale"], lp["attn_norm"]["bias"], eps)
  pre = dense("ffn_in", y1)
  act = ACTIVATION_FNS[activation](pre)
  ffn = dense("ffn_out", act)
  out = _plain_layer_norm(ffn + y1, lp["ffn_norm"]["scale"], lp["ffn_norm"]["bias"], eps)
  return LayerCache(x, q, k, v, scores, bias, probs, ctx, attn, y1, pre, act, ffn, out)


def layer_relprop(lp, c: LayerCache, r_out, head_mask, halve_saved: bool, slots=None):
  """Relevance of a layer's input from that of its output, and the saved attention relevance.

  Args:
    lp: the layer's parameters (plain dict).
    c: its :class:`LayerCache`.
    r_out: ``[T, H]`` relevance of the layer's output.
    head_mask: ``[N]`` scales each head's context relevance before it propagates through
      ``A V`` (Mask-LRP); all ones for Chefer's GAE.
    halve_saved: whether the saved attention relevance is the halved, masked share (GAE) or the
      unmasked, un-halved one (Mask-LRP's ``MGAE``).
    slots: ``[T, S]`` a packed row's examples (see :func:`relprop_add`), or ``None``.
  Returns:
    ``(r_in [T, H], r_attention [N, T, T])``.
  """
  t, h = c.x.shape
  n, _, d = c.q.shape
  heads = lambda y: y.reshape(t, n, d).transpose(1, 0, 2)
  merge = lambda y: y.transpose(1, 0, 2).reshape(t, h)
  # Output LayerNorm: identity. Residual around the feed-forward block.
  r_ffn, r_y1_skip = relprop_add(c.ffn, c.y1, r_out, 0, slots)
  r_act = relprop_linear(c.act, lp["ffn_out"]["kernel"], r_ffn)   # activation: identity
  r_y1 = relprop_linear(c.y1, lp["ffn_in"]["kernel"], r_act) + r_y1_skip
  # Attention LayerNorm: identity. Residual around self-attention.
  r_dense, r_x_skip = relprop_add(c.dense, c.x, r_y1, 0, slots)
  r_ctx = heads(relprop_linear(c.ctx, lp["attn_out"]["kernel"], r_dense))       # [N, T, D]
  r_a, r_v = relprop_matmul(c.probs, c.v, r_ctx * head_mask[:, None, None])
  r_a, r_v = r_a / 2, r_v / 2
  if halve_saved:
    saved = r_a
  else:
    saved = relprop_matmul(c.probs, c.v, r_ctx)[0]
  # Softmax and dropout: identity. The mask-bias add, then Q K^T.
  r_s, _ = relprop_add(c.scores, c.bias, r_a, 1, slots)
  r_q, r_kt = relprop_matmul(c.q, c.k.transpose(0, 2, 1), r_s)
  r_q, r_k = r_q / 2, r_kt.transpose(0, 2, 1) / 2
  r_x = (relprop_linear(c.x, lp["query"]["kernel"], merge(r_q))
         + relprop_linear(c.x, lp["key"]["kernel"], merge(r_k))
         + relprop_linear(c.x, lp["value"]["kernel"], merge(r_v)))
  return r_x + r_x_skip, saved


def head_relprop(hp, family: str, last, seed, starts=None):
  """Relevance of the last hidden state ``[T, H]`` from a seed on the logits ``[C]``.

  Pooler/dense, activation (identity), classifier, all α1β0; the relevance lands on ``[CLS]``.
  A packed row has a seed per slot, ``[S, C]``, landing on each example's first token
  (``starts [S]``; empty slots, ``-1``, have zero seeds).
  """
  inner = hp["pooler"] if family == "bert" else hp["dense"]
  rows = 0 if starts is None else jnp.maximum(starts, 0)
  cls = last[rows]                                                     # [H] or [S, H]
  pooled = ACTIVATION_FNS[HEAD_ACTIVATION[family]](cls @ inner["kernel"] + inner["bias"])
  r_pooled = relprop_linear(pooled, hp["out"]["kernel"], seed)
  r_cls = relprop_linear(cls, inner["kernel"], r_pooled)
  return jnp.zeros_like(last).at[rows].add(r_cls)


def chefer_relprop(p, config, hidden, mask, seed, head_mask, halve_saved: bool, starts=None,
                   slots=None):
  """Chefer relprop for ONE example (or one packed row) through the whole encoder.

  Args:
    p: parameters as a plain dict (``nnx.to_pure_dict(params)``).
    config: the model's :class:`EncoderConfig`.
    hidden: ``[L+1, T, H]`` hidden states from the (explanation) forward pass.
    mask: ``[T]`` attention mask of the explanation forward pass, or ``[T, T]`` the keys each
      query attends to (a packed row).
    seed: ``[C]`` starting relevance on the logits (one-hot in the reference); ``[S, C]`` for
      a packed row, one per slot.
    head_mask: ``[L, N]`` relevance-pass head mask (ones for GAE).
    halve_saved: see :func:`layer_relprop`.
    starts: ``[S]`` a packed row's first token per slot (:attr:`jaxplain.Packing.starts`).
    slots: ``[T, S]`` a packed row's slot mask (:meth:`jaxplain.Packing.slot_mask`).
  Returns:
    ``(r_attention [L, N, T, T], r_input [T, H])``: the saved attention relevance per layer and
    the relevance of the encoder's input (the embeddings' output).
  """
  mask_bias = jnp.where(mask > 0, 0.0, jnp.finfo(jnp.float32).min).astype(jnp.float32)
  caches = [layer_forward(p["layers"][i], hidden[i], mask_bias, config.num_heads,
                          config.layer_norm_eps, config.activation)
            for i in range(config.num_layers)]
  r = head_relprop(p["head"], config.family, hidden[-1], seed, starts)
  saved = [None] * config.num_layers
  for i in reversed(range(config.num_layers)):
    r, saved[i] = layer_relprop(p["layers"][i], caches[i], r, head_mask[i], halve_saved, slots)
  return jnp.stack(saved), r


def rollout(maps, start_layer: int = 0):
  """Row-normalised ``(M_l + I)`` multiplied from ``start_layer`` up: ``M_L ... M_start``.

  Args:
    maps: ``[L, ..., T, T]`` per-layer maps.
  Returns:
    ``[..., T, T]``.
  """
  eye = jnp.eye(maps.shape[-1], dtype=maps.dtype)
  aug = maps + eye
  aug = aug / aug.sum(-1, keepdims=True)
  joint = aug[start_layer]
  for i in range(start_layer + 1, maps.shape[0]):
    joint = aug[i] @ joint
  return joint


def cls_row(joint, cls_self: str, mask=None, packing=None):
  """``[..., T, T] -> [..., T]``: the [CLS] row, its own entry per ``cls_self``.

  ``"zero"`` (Mask-LRP's code), ``"min"`` (Chefer's code: the minimum over the row's real
  tokens, ``mask [..., T]``) or ``"keep"``. With ``packing`` (:class:`jaxplain.Packing`;
  ``joint [B, T, T]``), each token reads the row of its own example's [CLS].
  """
  if packing is not None:
    return _packed_cls_row(joint, cls_self, packing, mask)
  row = joint[..., 0, :]
  if cls_self == "zero":
    return row.at[..., 0].set(0.0)
  if cls_self == "min":
    real = row if mask is None else jnp.where(mask > 0, row, jnp.inf)
    return row.at[..., 0].set(real.min(-1))
  if cls_self == "keep":
    return row
  raise InputError(f"cls_self {cls_self!r} is unknown; use 'zero', 'min' or 'keep'.")


def _packed_cls_row(joint, cls_self: str, packing, mask=None):
  """:func:`cls_row` of a packed ``joint [B, T, T]``: token ``t`` reads
  ``joint[b, start(t), t]``, the row of its own example's [CLS] (``"min"``: the minimum over
  its own tokens where ``mask [B, T]`` is set)."""
  starts = packing.token_starts()                                        # [B, T]
  row = jnp.take_along_axis(joint, starts[:, None, :], axis=1)[:, 0, :]
  is_cls = packing.first_tokens()
  if cls_self == "zero":
    return jnp.where(is_cls, 0.0, row)
  if cls_self == "min":  # the minimum over each example's own tokens
    slots = packing.slot_mask() > 0                                      # [B, T, S]
    if mask is not None:
      slots = slots & (mask[:, :, None] > 0)
    mins = jnp.where(slots, row[..., None], jnp.inf).min(1)              # [B, S]
    own = jnp.take_along_axis(mins, packing.token_slots(), axis=1)
    return jnp.where(is_cls, own, row)
  if cls_self == "keep":
    return row
  raise InputError(f"cls_self {cls_self!r} is unknown; use 'zero', 'min' or 'keep'.")
