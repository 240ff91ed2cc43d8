r"""Attention-based attributions: raw attention, rollout, attention gradients, AttCAT.

All read the attention probabilities ``A [L, B, N, T, T]`` from :class:`Outputs`; the
gradient-weighted ones take ``dlogit/dA`` from one backward pass through a zero
``attention_delta`` (and AttCAT ``dlogit/dh`` through a zero ``hidden_delta``). Scores are the
``[CLS]`` row (query 0) of a ``T x T`` map, so they rank the tokens the classifier's ``[CLS]``
reads from; with ``cls_self="zero"`` (the Mask-LRP evaluation code, default) the ``[CLS]``
entry itself is 0. Means over query rows run over real tokens only, so padding never changes
a score. On a packed batch (:class:`jaxplain.Packing`) each token reads its own example's
``[CLS]`` row, and means, head weights and min-max stay inside that example's block of the maps
(``partial_lrp``'s Chefer relprop keeps each example's own key mask and seed, see ``lrp``).

Definitions follow Mask-LRP's baseline list (Song et al. 2024, Sec. 1.5 of the project notes):

==========================  ==============================================================
``raw_attention``           :math:`\mathbb{E}_h A_L[h, 0, :]`
``attention_rollout``       :math:`[\prod_l \mathrm{rownorm}(\mathbb{E}_h A_l + I)]_{0,:}`
``attention_gradient``      "Grad": :math:`\mathbb{E}_{h,i}[\nabla A_L]^+`
``att_gradcam``             :math:`\mathrm{minmax}(\mathbb{E}_h[w_h A_L[h]]^+)_{0,:}`,
                            :math:`w_h = \mathbb{E}_{i,j}\nabla A_L[h]`
``attention_x_gradient``    Chefer 2021b: :math:`R \leftarrow R + \mathbb{E}_h[(\nabla A_l
                            \odot A_l)^+] R`, row 0
``partial_lrp``             last layer's LRP attention relevance :math:`\mathbb{E}_h
                            R_{A_L}^+`, row 0
``attcat``                  :math:`\sum_l (\sum_H \nabla h_l \odot h_l) \odot
                            \mathbb{E}_{h,i} A_l[h, i, :]`
==========================  ==============================================================
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from jaxplain.attribution import _relprop
from jaxplain.attribution._common import first_tokens, masked, resolve_target, target_logit
from jaxplain.attribution.lrp import chefer_relevance
from jaxplain.contracts import Batch, Forward, Params, Taps, Target


def _row_mean(x, mask, axis, packing=None):
  """Mean of ``x`` over the query axis ``axis`` restricted to real tokens (``mask [B, T]``).

  With ``packing`` (``x [B, T, T]``, ``axis=1``): over the query rows of each key's own example.
  """
  if packing is not None:
    same = packing.same_example().astype(jnp.float32)                  # [B, Tq, Tk]
    return (x * same).sum(axis) / jnp.maximum(same.sum(axis), 1.0)
  m = mask.astype(jnp.float32)
  shape = [1] * x.ndim
  shape[0], shape[axis] = m.shape[0], m.shape[1]
  w = m.reshape(shape)
  return (x * w).sum(axis) / jnp.maximum(m.sum(-1), 1.0).reshape(
      [m.shape[0]] + [1] * (x.ndim - 2))


def _attention_and_grad(forward, params, batch, target):
  """``(A, dlogit/dA)``, both ``[L, B, N, T, T]``, one backward pass."""
  target = resolve_target(forward, params, batch, target)
  attention = forward(params, batch, Taps()).attention

  def f(delta):
    return target_logit(forward(params, batch, Taps(attention_delta=delta)), target).sum()

  return attention, jax.grad(f)(jnp.zeros_like(attention))


def raw_attention(forward: Forward, params: Params, batch: Batch, target: Target = None, *,
                  key: PRNGKeyArray | None = None, layer: int = -1,
                  cls_self: str = "zero") -> Float[Array, "B T"]:
  r"""Raw attention of ``[CLS]``: :math:`\mathbb{E}_h A_l[h, 0, t]` at layer ``layer`` (last).

  Args:
    forward, params, batch: as for every kernel; ``target`` is unused (class-agnostic).
    layer: which layer (default the last, as Mask-LRP's ``generate_attn_last_layer``).
    cls_self: the [CLS] entry: ``"zero"`` (default, as the reference), ``"min"``, ``"keep"``.
  Returns:
    ``[B, T]`` float32 in ``[0, 1]``, 0 on padding.
  """
  del key, target
  a = forward(params, batch, Taps()).attention[layer].mean(1)          # [B, T, T]
  return masked(_relprop.cls_row(a, cls_self, batch.attention_mask, batch.packing),
                batch.attention_mask)


def attention_rollout(forward: Forward, params: Params, batch: Batch, target: Target = None,
                      *, key: PRNGKeyArray | None = None, start_layer: int = 0,
                      cls_self: str = "zero") -> Float[Array, "B T"]:
  r"""Attention rollout (Abnar & Zuidema 2020), head mean with the residual identity.

  .. math:: C = \prod_{l=L}^{s} \mathrm{rownorm}(\mathbb{E}_h A_l + I),\quad
            \text{scores} = C_{0,:}

  Returns:
    ``[B, T]`` float32, non-negative, 0 on padding.
  References:
    Abnar & Zuidema, `Quantifying Attention Flow in Transformers
    <https://arxiv.org/abs/2005.00928>`_, ACL 2020.
  """
  del key, target
  a = forward(params, batch, Taps()).attention.mean(2)                 # [L, B, T, T]
  joint = _relprop.rollout(a, start_layer)
  return masked(_relprop.cls_row(joint, cls_self, batch.attention_mask, batch.packing),
                batch.attention_mask)


def attention_gradient(forward: Forward, params: Params, batch: Batch, target: Target = None,
                       *, key: PRNGKeyArray | None = None,
                       cls_self: str = "zero") -> Float[Array, "B T"]:
  r""""Grad" baseline: last-layer :math:`\partial f/\partial A` averaged over heads and rows, ReLU.

  .. math:: s_t = \max(0, \mathbb{E}_{h,i}\, \partial f / \partial A_L[h, i, t])

  Returns:
    ``[B, T]`` float32, non-negative, 0 on padding (``[CLS]`` 0 unless ``cls_self="keep"``).
  Notes:
    Mask-LRP's ``generate_gradcam``; the row mean runs over real query tokens only.
  """
  del key
  _, g = _attention_and_grad(forward, params, batch, target)
  s = jnp.maximum(_row_mean(g[-1].mean(1), batch.attention_mask, 1, batch.packing), 0.0)  # [B, T]
  if cls_self == "zero":
    s = jnp.where(first_tokens(batch), 0.0, s)
  return masked(s, batch.attention_mask)


def att_gradcam(forward: Forward, params: Params, batch: Batch, target: Target = None, *,
                key: PRNGKeyArray | None = None, cls_self: str = "zero") -> Float[Array, "B T"]:
  r"""Attention Grad-CAM: last-layer attention weighted by each head's mean gradient.

  .. math:: M = \max(0, \mathbb{E}_h[w_h A_L[h]]),\ w_h = \mathbb{E}_{i,j}
            \partial f/\partial A_L[h,i,j],\quad \text{scores} = \mathrm{minmax}(M)_{0,:}

  Min-max normalisation runs over the example's real ``T x T`` block.

  Returns:
    ``[B, T]`` float32 in ``[0, 1]``, 0 on padding.
  """
  del key
  a, g = _attention_and_grad(forward, params, batch, target)
  if batch.packing is not None:
    return _packed_att_gradcam(a[-1], g[-1], batch, cls_self)
  m = batch.attention_mask.astype(jnp.float32)
  pair = m[:, None, :, None] * m[:, None, None, :]                      # [B, 1, T, T]
  w = (g[-1] * pair).sum((2, 3), keepdims=True) / jnp.maximum(pair.sum((2, 3), keepdims=True), 1)
  cam = jnp.maximum((a[-1] * w).mean(1), 0.0)                            # [B, T, T]
  real = pair[:, 0] > 0
  lo = jnp.where(real, cam, jnp.inf).min((1, 2), keepdims=True)
  hi = jnp.where(real, cam, -jnp.inf).max((1, 2), keepdims=True)
  cam = _relprop.sdiv(cam - lo, hi - lo)
  return masked(_relprop.cls_row(cam, cls_self, batch.attention_mask), batch.attention_mask)


def _packed_att_gradcam(a, g, batch: Batch, cls_self: str) -> Float[Array, "B T"]:
  """:func:`att_gradcam` of a packed batch (``a``, ``g``: the last layer's ``[B, N, T, T]``):
  head weights and min-max over each example's own ``T x T`` block."""
  packing = batch.packing
  slots = packing.slot_mask()                                            # [B, T, S]
  slot_of = packing.token_slots()                                        # [B, T]
  sums = jnp.einsum("bnit,bis,bts->bns", g, slots, slots)
  w = sums / jnp.maximum(slots.sum(1) ** 2, 1.0)[:, None, :]             # [B, N, S]
  w_row = jnp.take_along_axis(w, slot_of[:, None, :], axis=2)            # [B, N, T] by query
  cam = jnp.maximum((a * w_row[..., None]).mean(1), 0.0)                 # [B, T, T]
  same = packing.same_example()

  def per_query(reduce, fill):  # each query's example's min or max over its own block
    rows = reduce(jnp.where(same, cam, fill), axis=2)                    # [B, T]
    per_slot = reduce(jnp.where(slots > 0, rows[..., None], fill), axis=1)   # [B, S]
    per_slot = jnp.where(jnp.isfinite(per_slot), per_slot, 0.0)         # empty slots
    return jnp.take_along_axis(per_slot, slot_of, axis=1)[..., None]     # [B, T, 1]

  lo, hi = per_query(jnp.min, jnp.inf), per_query(jnp.max, -jnp.inf)
  cam = _relprop.sdiv(cam - lo, hi - lo)
  return masked(_relprop.cls_row(cam, cls_self, batch.attention_mask, packing),
                batch.attention_mask)


def attention_x_gradient(forward: Forward, params: Params, batch: Batch, target: Target = None,
                         *, key: PRNGKeyArray | None = None,
                         cls_self: str = "zero") -> Float[Array, "B T"]:
  r"""Generic attention explainability (Chefer et al. 2021b): gradient-weighted attention.

  .. math:: R \leftarrow I;\quad R \leftarrow R + \mathbb{E}_h[(\nabla A_l \odot A_l)^+]\, R
            \ (l = 1..L);\quad \text{scores} = R_{0,:}

  One forward pass, one backward pass through a zero ``attention_delta``, ``L`` small matmuls.

  Returns:
    ``[B, T]`` float32, non-negative, 0 on padding.
  References:
    Chefer, Gur, Wolf, `Generic Attention-model Explainability for Interpreting Bi-Modal and
    Encoder-Decoder Transformers <https://arxiv.org/abs/2103.15679>`_, ICCV 2021.
  """
  del key
  a, g = _attention_and_grad(forward, params, batch, target)
  maps = jnp.maximum(g * a, 0.0).mean(2)                                 # [L, B, T, T]
  r = jnp.broadcast_to(jnp.eye(maps.shape[-1], dtype=jnp.float32), maps.shape[1:])
  for layer in range(maps.shape[0]):
    r = r + maps[layer] @ r
  return masked(_relprop.cls_row(r, cls_self, batch.attention_mask, batch.packing),
                batch.attention_mask)


def partial_lrp(forward: Forward, params: Params, batch: Batch, target: Target = None, *,
                key: PRNGKeyArray | None = None, cls_self: str = "zero") -> Float[Array, "B T"]:
  r"""Partial LRP (Voita et al. 2019 style): last layer's attention relevance, ReLU, head mean.

  .. math:: \text{scores} = \mathbb{E}_h[\max(0, R_{A_L})]_{0,:}

  ``R_A`` comes from Chefer's relprop (:func:`jaxplain.attribution.lrp.chefer_relevance`).

  Returns:
    ``[B, T]`` float32, non-negative, 0 on padding.
  """
  del key
  r_att, _, _, _ = chefer_relevance(forward, params, batch, target)
  cam = jnp.maximum(r_att[-1], 0.0).mean(1)
  return masked(_relprop.cls_row(cam, cls_self, batch.attention_mask, batch.packing),
                batch.attention_mask)


def attcat(forward: Forward, params: Params, batch: Batch, target: Target = None, *,
           key: PRNGKeyArray | None = None) -> Float[Array, "B T"]:
  r"""AttCAT (Qiang et al. 2022): attentive class activation tokens.

  .. math:: s_t = \sum_l \Big(\sum_H \nabla h_{l,t} \odot h_{l,t}\Big)\,
            \mathbb{E}_{h,i} A_l[h, i, t]

  where :math:`h_l` is the input of layer :math:`l`.

  Returns:
    ``[B, T]`` float32, signed, 0 on padding.
  References:
    Qiang et al., `AttCAT: Explaining Transformers via Attentive Class Activation Tokens
    <https://openreview.net/forum?id=cA8Zor8wFr5>`_, NeurIPS 2022.
  """
  del key
  target = resolve_target(forward, params, batch, target)
  out = forward(params, batch, Taps())

  def f(delta):
    return target_logit(forward(params, batch, Taps(hidden_delta=delta)), target).sum()

  g = jax.grad(f)(jnp.zeros_like(out.hidden))
  cat = jnp.sum(g[:-1] * out.hidden[:-1], -1)                            # [L, B, T]
  col = jax.vmap(lambda a: _row_mean(a.mean(1), batch.attention_mask, 1, batch.packing))(
      out.attention)
  return masked((cat * col).sum(0), batch.attention_mask)
