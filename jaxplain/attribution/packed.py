"""Gradient methods on packed batches: several examples per row (:class:`jaxplain.Packing`).

A packed batch's logits are ``[B, S, C]``, one row per slot. Examples in a row do not interact
(attention stays inside each example), so the gradient of the sum of every slot's target logit
with respect to the word embeddings (or any hidden state) is, token by token, the gradient of
that token's own example: the kernels of :data:`PACKABLE` run unchanged with
:func:`packed_target` as a callable target, and their ``[B, T]`` (per-layer: ``[L+1, B, T]``)
scores are each example's own. :func:`packed_ig_delta` gives IG's completeness gap per slot.

``target=None`` on a packed batch is each slot's predicted class
(:func:`~jaxplain.attribution._common.resolve_target`); the plain gradient methods find it from
the primal output of their own backward pass, as they do unpacked.
"""

from typing import Any

import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from jaxplain.attribution._common import masked, packed_target, slot_logits
from jaxplain.attribution.gradients import path_endpoints
from jaxplain.contracts import Batch, Forward, Params, Taps

PACKABLE: tuple[str, ...] = ("gradient", "saliency", "gradient_x_input", "integrated_gradients",
                             "smoothgrad", "smoothgrad_sq", "vargrad",
                             "layer_gradient_x_activation", "layer_integrated_gradients",
                             "attnlrp", "cp_lrp", "raw_attention", "rollout",
                             "attention_gradient", "attention_x_gradient", "att_gradcam",
                             "attcat", "gae", "mask_lrp", "partial_lrp", "full_lrp")
"""Methods that give the same scores on packed batches: backward passes of one logit per
example, through the word embeddings or (the layer variants) every hidden state, under the
plain gradient rules or an LRP rule set (AttnLRP, CP-LRP: the same backward pass with other
local rules, :mod:`jaxplain.attribution.lrp`). The noise tunnels draw each packed token's noise
from its slot's key and its position in its own example
(:func:`~jaxplain.attribution.smoothing.embedding_noise`), so with a key per slot ``[B, S]`` a
packed example gets the samples it gets alone. The attention methods
(:mod:`jaxplain.attribution.attention`) read each token's score from its
own example's [CLS] row (``Packing.token_starts``), and take their row means, head weights and
min-max over its own block of the attention maps (``Packing.same_example``). Chefer's relprop
kernels (GAE, Mask-LRP, full and partial LRP) re-run each packed row's layers with each query's
own key mask, seed every example's [CLS] with its own class, and rescale their residual rule per
example (``_relprop.relprop_add``'s ``slots``).

Not here: the seed methods. DiffMask and LAFA take per-text state (gates, reference pools), and
decoded layer saliency's scores change when packed (checked on the test suite's tiny BERT)."""


def segment_sums(scores: Float[Array, "B T"], batch: Batch) -> Float[Array, "B S"]:
  """The sum of each packed example's token scores, per slot ``[B, S]``."""
  return jnp.einsum("bt,bts->bs", masked(scores, batch.attention_mask),
                    batch.packing.slot_mask())


def packed_ig_delta(forward: Forward, params: Params, batch: Batch, classes: Int[Array, "B S"],
                    scores: Float[Array, "B T"], *, baseline: Any = "pad", pad_id: int = 0,
                    mask_id: int = 103, unk_id: int = 100,
                    special_ids: tuple[int, ...] = (101, 102),
                    **unused: Any) -> Float[Array, "B S"]:
  r"""IG's completeness gap per slot, :math:`\sum_t \mathrm{IG}_t - (f(x) - f(x'))`, as
  :func:`~jaxplain.attribution.gradients.ig_convergence_delta` gives it for each example alone.

  The named baselines (``"pad"`` ...) keep special tokens by id (``special_ids``), so each
  packed example keeps its own ``[CLS]`` and ``[SEP]``.
  """
  del unused
  starts = batch.packing.starts
  _, x, x0 = path_endpoints(forward, params, batch, classes, None, baseline, pad_id=pad_id,
                            mask_id=mask_id, unk_id=unk_id, special_ids=special_ids)
  fx = slot_logits(forward(params, batch, Taps(word_embeddings=x)), classes, starts)
  f0 = slot_logits(forward(params, batch, Taps(word_embeddings=x0)), classes, starts)
  return segment_sums(scores, batch) - (fx - f0)


PACKED_DELTAS = {"integrated_gradients": packed_ig_delta,
                 # Of layer IG's embeddings row, as CONVERGENCE_DELTAS has it unpacked.
                 "layer_integrated_gradients": packed_ig_delta}
"""Per-slot ``[B, S]`` counterparts of ``CONVERGENCE_DELTAS`` for packed batches."""


__all__ = ["PACKABLE", "PACKED_DELTAS", "packed_ig_delta", "packed_target", "segment_sums",
           "slot_logits"]
