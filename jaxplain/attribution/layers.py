r"""Layer attributions for every hidden state at once: gradient x activation and layer IG.

Gradients with respect to all ``L+1`` hidden states come from ONE backward pass through the zero
``Taps.hidden_delta`` (added to every hidden state, so ``d f / d delta_l = d f / d h_l``). The
kernels return ``[L+1, B, T]``: row 0 is the embeddings' output (Captum's ``model.bert.embeddings``),
row ``l`` the output of layer ``l`` (``model.bert.encoder.layer[l-1]``). :func:`jaxplain.attribute`
shows row 0 as ``scores`` and keeps all rows in ``extra["layers"]``.
"""

from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from jaxplain.attribution._common import (class_cotangent, example_axes, masked, resolve_target,
                                          target_logit)
from jaxplain.attribution._quadrature import check_chunk_size, map_steps, quadrature_table
from jaxplain.attribution.gradients import path_endpoints
from jaxplain.contracts import Batch, Forward, Params, Target, Taps
from jaxplain.errors import InputError

PATHS = ("inputs", "layer")
"""How :func:`layer_integrated_gradients` integrates: one pass for all layers, or Captum-exact."""


def hidden_grads(forward: Forward, params: Params, batch: Batch, target: Any,
                 embeddings: Float[Array, "B T E"] | None = None
                 ) -> tuple[Float[Array, "L1 B T H"], Float[Array, "L1 B T H"]]:
  """``(d f / d h_l, h_l)`` for every hidden state, from one forward and one backward pass."""
  taps = Taps(word_embeddings=embeddings)
  shape = jax.eval_shape(lambda: forward(params, batch, taps).hidden)
  zeros = jnp.zeros(shape.shape, jnp.float32)

  def f(delta):
    out = forward(params, batch, Taps(word_embeddings=embeddings, hidden_delta=delta))
    return target_logit(out, target).sum(), out.hidden

  return jax.grad(f, has_aux=True)(zeros)


def layer_gradient_x_activation(forward: Forward, params: Params, batch: Batch,
                                target: Target = None, *, key: PRNGKeyArray | None = None,
                                embeddings: Float[Array, "B T E"] | None = None
                                ) -> Float[Array, "L1 B T"]:
  r"""Gradient x activation of every hidden state: :math:`\sum_h h_{l,th}\,\partial f/\partial h_{l,th}`.

  Args:
    forward, params, batch: the model and its input.
    target: class per example, ``None`` (predicted) or ``Outputs -> [B]``.
    key: unused (deterministic).
    embeddings: ``[B, T, E]`` word embeddings to evaluate at (default: the batch's own).
  Returns:
    ``[L+1, B, T]`` float32, signed, 0 on padding.
  References:
    Shrikumar et al., 2016 (gradient x input); Captum ``LayerGradientXActivation``.
  Notes:
    Row ``l`` equals Captum's ``LayerGradientXActivation`` on that layer's output, summed over
    ``H`` (row 0: ``model.bert.embeddings``), for all layers in one backward pass.
  """
  del key
  if embeddings is None and not callable(target):  # classes: one pass finds and explains them
    return layer_gradient_x_activation_and_logits(forward, params, batch, target)[0]
  target = resolve_target(forward, params, batch, target)
  grads, hidden = hidden_grads(forward, params, batch, target, embeddings)
  return masked(jnp.sum(grads * hidden, axis=-1), batch.attention_mask[None])


def layer_gradient_x_activation_and_logits(
    forward: Forward, params: Params, batch: Batch, classes: Int[Array, "..."] | int | None = None
) -> tuple[Float[Array, "L1 B T"], Float[Array, "..."], Int[Array, "..."]]:
  """:func:`layer_gradient_x_activation` with the logits of its own forward pass.

  The logits are the primal output of the ``jax.vjp`` whose pullback gives every hidden state's
  gradient, so the predicted class (``classes=None``) and the probabilities that
  :func:`jaxplain.attribute` reports cost no forward pass of their own (a third of this
  method's work).

  Args:
    forward, params, batch: the model and a ``[B, T]`` batch (packed or not).
    classes: class per example (``[B, S]`` per slot when packed), an int, or ``None`` (the
      predicted class).
  Returns:
    ``(scores [L+1, B, T], logits [B, K] or [B, S, K], classes)``.
  """
  rows = example_axes(batch)
  shape = jax.eval_shape(lambda: forward(params, batch, Taps()).hidden).shape

  def logits_of(delta):
    out = forward(params, batch, Taps(hidden_delta=delta))
    return out.logits.reshape(rows + (-1,)), out.hidden

  logits, pullback, hidden = jax.vjp(logits_of, jnp.zeros(shape, jnp.float32), has_aux=True)
  classes, cotangent = class_cotangent(logits, classes, batch)
  (grads,) = pullback(cotangent)
  return (masked(jnp.sum(grads * hidden, axis=-1), batch.attention_mask[None]), logits,
          classes)


def layer_integrated_gradients(forward: Forward, params: Params, batch: Batch,
                               target: Target = None, *, key: PRNGKeyArray | None = None,
                               steps: int = 50, quadrature: str = "gausslegendre",
                               baseline: Any = "pad", path: str = "inputs",
                               chunk_size: int | str | None = "auto",
                               embeddings: Float[Array, "B T E"] | None = None,
                               pad_id: int = 0, mask_id: int = 103, unk_id: int = 100,
                               special_ids: tuple[int, ...] = (101, 102)
                               ) -> Float[Array, "L1 B T"]:
  r"""Integrated Gradients of every hidden state ``h_l`` (Captum ``LayerIntegratedGradients``).

  ``path="layer"`` (Captum-exact): for each ``l``, the state entering the layers above is
  interpolated straight between its values at the baseline and at the input,

  .. math:: \mathrm{LIG}_{l,t} = \sum_h (h_{l}(x) - h_{l}(x'))_{th} \sum_s w_s\,
     \frac{\partial f}{\partial h_{l,th}}\big(h_l(x') + \alpha_s (h_l(x) - h_l(x'))\big),

  one IG run per layer (``L+1`` runs, each starting at layer ``l``).

  ``path="inputs"`` (default; one backward pass per step for all layers): the word embeddings are
  interpolated as in :func:`~jaxplain.attribution.gradients.integrated_gradients` and every
  layer's gradient along that path, read from ``hidden_delta``, multiplies the same activation
  difference:

  .. math:: \sum_h (h_{l}(x) - h_{l}(x'))_{th} \sum_s w_s\,
     \frac{\partial f}{\partial h_{l,th}}\big(h_l(x' + \alpha_s (x - x'))\big).

  The two agree where ``h_l`` is affine in the word embeddings along the path; LayerNorm and
  attention make that approximate, so ``"inputs"`` rows are neither Captum's numbers nor complete
  (their sum is not exactly ``f(x) - f(x')``), while ``"layer"`` rows are both, up to quadrature.

  Args:
    forward, params, batch, target: as for every kernel.
    key: unused (deterministic).
    steps, quadrature, baseline, chunk_size, embeddings, pad_id, mask_id, unk_id, special_ids:
      as for :func:`~jaxplain.attribution.gradients.integrated_gradients` (the baseline is given
      in word-embedding space; ``h_l(x')`` is the model run on it).
    path: ``"inputs"`` (one pass, default) or ``"layer"`` (Captum-exact, ``L+1`` passes).
  Returns:
    ``[L+1, B, T]`` float32, signed, 0 on padding.
  References:
    Sundararajan et al., 2017; Captum ``LayerIntegratedGradients`` (``attribute_to_layer_input=
    False``), with ``layer=model.bert.embeddings`` for row 0 and ``model.bert.encoder.layer[l-1]``
    for row ``l``. IG on the word-embedding lookup itself (Captum's
    ``LayerIntegratedGradients(model, model.bert.embeddings.word_embeddings)``) is
    :func:`~jaxplain.attribution.gradients.integrated_gradients`.
  Notes:
    Defaults match Captum's (50 steps, Gauss-Legendre) apart from ``path``; pass
    ``path="layer"`` for Captum's numbers.
  """
  del key
  if path not in PATHS:
    raise InputError(f"unknown layer IG path {path!r}; use 'inputs' (one pass) or 'layer' "
                     "(Captum-exact).")
  alphas, weights = quadrature_table(quadrature, steps)
  check_chunk_size(chunk_size)
  target, x, x0 = path_endpoints(forward, params, batch, target, embeddings, baseline,
                                 pad_id=pad_id, mask_id=mask_id, unk_id=unk_id,
                                 special_ids=special_ids)
  h1 = forward(params, batch, Taps(word_embeddings=x)).hidden      # [L+1, B, T, H]
  h0 = forward(params, batch, Taps(word_embeddings=x0)).hidden
  dh = h1 - h0
  nodes = (jnp.asarray(alphas, jnp.float32), jnp.asarray(weights, jnp.float32))

  if path == "inputs":
    def step_fn(aw):  # [L+1, B, T]
      alpha, weight = aw
      g, _ = hidden_grads(forward, params, batch, target, x0 + alpha * (x - x0))
      return weight * jnp.sum(g * dh, axis=-1)

    rows = jnp.sum(map_steps(step_fn, nodes, chunk_size, rows=batch.input_ids.size), axis=0)
  else:
    per_layer = []
    for layer in range(h1.shape[0]):
      def grad_at(h, layer=layer):
        out = forward(params, batch, Taps(hidden=h, hidden_layer=layer))
        return target_logit(out, target).sum()

      def step_fn(aw, layer=layer, grad_at=grad_at):  # [B, T]
        alpha, weight = aw
        g = jax.grad(grad_at)(h0[layer] + alpha * dh[layer])
        return weight * jnp.sum(g * dh[layer], axis=-1)

      per_layer.append(jnp.sum(map_steps(step_fn, nodes, chunk_size, rows=batch.input_ids.size),
                               axis=0))
    rows = jnp.stack(per_layer)
  return masked(rows, batch.attention_mask[None])
