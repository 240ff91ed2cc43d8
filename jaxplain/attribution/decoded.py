r"""Decoded layer saliency (Hou and Castanon, ICML 2023): saliency read from inside the layers.

Grad-CAM-style saliency is computed on the hidden states of a layer, each position is decoded
back onto the vocabulary through a language-model head, and each position's saliency is handed
to the input tokens among its top-:math:`\tau` decoded tokens:

.. math::
   s_i = \mathrm{ReLU}\Big(\sum_k w_k h_{l,ik}\Big),\quad w_k = \frac{1}{T}\sum_i
   \frac{\partial y_c}{\partial h_{l,ik}},\qquad
   \mathrm{sal}(t_j) = \sum_i s_i\, P_i(t_j)\, \mathbb{1}[t_j \in \mathrm{top}_\tau(P_i)]

with :math:`P_i = \mathrm{softmax}(f_{lm}(h_{l,i}))`. All layers come from one backward pass
(zero ``hidden_delta`` taps).

The paper's full text was not available to us; these choices are ours (unverified), each a
named option: Grad-CAM aggregation (``w`` averaged over real tokens); weighting by
:math:`P_i(t_j)` (``weighting="probability"``, or ``"indicator"``); special tokens and padding
receive no saliency; the decoder is the model's own masked-LM head when it has one (reached
through the ``hidden`` tap at the last layer, so only the head runs), otherwise the tied word
embeddings :math:`h E^\top` (``decoder="tied_embeddings"``, a named fallback: no transform, no
bias). Semantic coherence of layer l is the share of real positions whose own token is among
their top-:math:`\tau` decoded tokens; the automatic layer is the deepest whose coherence reaches
``min_coherence``.
"""

from typing import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from jaxplain.attribution._common import masked, resolve_target, target_logit
from jaxplain.contracts import Batch, Forward, Params, Taps, Target
from jaxplain.errors import InputError

DECODERS = ("own_head", "tied_embeddings")


def _real_tokens(batch: Batch) -> Int[Array, "B T"]:
  real = batch.attention_mask
  if batch.word_ids is not None:
    real = real * (batch.word_ids >= 0)
  return real


def make_decoder(forward: Forward, params: Params, num_layers: int, decoder: str,
                 batch: Batch, vocab_size: int | None = None
                 ) -> Callable[[Float[Array, "B T H"]], Float[Array, "B T V"]]:
  """``h [B, T, H] -> vocabulary logits [B, T, V]``.

  ``"own_head"`` runs the model's masked-LM head on ``h`` (``Taps(hidden=h,
  hidden_layer=L)``); ``"tied_embeddings"`` is :math:`h E^\\top` with the model's word
  embedding table, read through its own lookup.
  """
  if decoder == "own_head":
    return lambda h: forward(params, batch, Taps(hidden=h, hidden_layer=num_layers)).logits
  if decoder == "tied_embeddings":
    def tied(h):
      vocab = vocab_size or _vocab_size(params)
      ids = jnp.arange(vocab, dtype=jnp.int32)[None]
      table = forward(params, Batch(ids, jnp.ones_like(ids), jnp.zeros_like(ids)),
                      Taps()).word_embeddings[0]  # [V, E]
      if table.shape[-1] != h.shape[-1]:
        raise InputError("the tied-embedding decoder needs embedding width == hidden size; "
                         "this model projects its embeddings (ELECTRA): pass a masked-LM model.")
      return jnp.einsum("bth,vh->btv", h, table)
    return tied
  raise InputError(f"unknown decoder {decoder!r}; use one of {', '.join(DECODERS)}.")


def _vocab_size(params: Params) -> int:
  """Rows of the word-embedding table, found by its parameter path (``...word...``)."""
  leaves = jax.tree_util.tree_leaves_with_path(params)
  for path, leaf in leaves:
    names = "/".join(str(getattr(p, "key", getattr(p, "idx", p))) for p in path)
    if "word" in names and leaf.ndim == 2:
      return int(leaf.shape[0])
  raise InputError("could not find the word-embedding table; use decoder='own_head'.")


def layer_gradcam(forward: Forward, params: Params, batch: Batch, target: Target = None
                  ) -> tuple[Float[Array, "L1 B T"], Float[Array, "L1 B T H"]]:
  """Grad-CAM saliency of every layer's hidden states in one backward pass.

  Returns:
    ``(s [L+1, B, T], hidden [L+1, B, T, H])``: ReLU'd saliency per position (0 on padding).
  """
  target = resolve_target(forward, params, batch, target)
  hidden0 = forward(params, batch, Taps()).hidden
  zeros = jnp.zeros_like(hidden0)

  def f(delta):
    out = forward(params, batch, Taps(hidden_delta=delta))
    return target_logit(out, target).sum(), out.hidden

  grads, hidden = jax.grad(f, has_aux=True)(zeros)
  m = batch.attention_mask[None, :, :, None].astype(jnp.float32)
  w = (grads * m).sum(2, keepdims=True) / jnp.maximum(m.sum(2, keepdims=True), 1.0)
  s = jax.nn.relu((w * hidden).sum(-1))
  return masked(s, batch.attention_mask[None]), hidden


def _decode_layer(decode, h, input_ids, real, tau: int, weighting: str):
  """Redistributes one layer's position saliency; also its coherence per example."""
  probs = jax.nn.softmax(decode(h).astype(jnp.float32), axis=-1)  # [B, T, V]
  top_p, top_ids = jax.lax.top_k(probs, tau)  # [B, T, tau]
  if weighting == "indicator":
    top_p = jnp.ones_like(top_p)
  # hit[b, i, j] = sum_r top_p[b,i,r] * [top_ids[b,i,r] == input_ids[b,j]]
  match = (top_ids[:, :, None, :] == input_ids[:, None, :, None])  # [B, Ti, Tj, tau]
  hit = (match * top_p[:, :, None, :]).sum(-1)
  own = (top_ids == input_ids[..., None]).any(-1).astype(jnp.float32)  # [B, T]
  r = real.astype(jnp.float32)
  coherence = (own * r).sum(-1) / jnp.maximum(r.sum(-1), 1.0)
  return hit, coherence


def decoded_layer_saliency_all(forward: Forward, params: Params, batch: Batch,
                               target: Target = None, *, key: PRNGKeyArray | None = None,
                               tau: int = 10, num_layers: int | None = None,
                               decoder: str = "tied_embeddings", weighting: str = "probability",
                               vocab_size: int | None = None
                               ) -> tuple[Float[Array, "L1 B T"], Float[Array, "L1 B"]]:
  """Decoded saliency of every layer and each layer's coherence.

  Args:
    tau: decoded tokens kept per position (the paper's threshold tau), >= 1.
    num_layers: L (needed by ``decoder="own_head"``; read from the outputs otherwise).
    decoder: ``"own_head"`` (masked-LM models) or ``"tied_embeddings"`` (the fallback).
    weighting: ``"probability"`` (:math:`P_i(t_j)`) or ``"indicator"``.
    vocab_size: rows of the embedding table for the tied decoder (found in ``params`` if
      ``None``).
  Returns:
    ``(saliency [L+1, B, T], coherence [L+1, B])``; saliency 0 on padding and special tokens.
  """
  del key
  if tau < 1:
    raise InputError(f"tau must be >= 1 (decoded tokens kept per position), got {tau}.")
  if weighting not in ("probability", "indicator"):
    raise InputError(f"unknown weighting {weighting!r}; use 'probability' or 'indicator'.")
  s, hidden = layer_gradcam(forward, params, batch, target)
  n_layers = hidden.shape[0] - 1 if num_layers is None else num_layers
  decode = make_decoder(forward, params, n_layers, decoder, batch.device_part(), vocab_size)
  real = _real_tokens(batch)

  def per_layer(args):
    s_l, h_l = args
    hit, coherence = _decode_layer(decode, h_l, batch.input_ids, real, tau, weighting)
    sal = jnp.einsum("bi,bij->bj", s_l * real, hit)
    return masked(sal, real), coherence

  return jax.lax.map(per_layer, (s, hidden))  # one layer at a time bounds [B, T, V] memory


def choose_layer(coherence: Float[Array, "L1 ..."], min_coherence: float = 0.5
                 ) -> Int[Array, "..."]:
  """The deepest layer whose coherence reaches ``min_coherence`` (else the most coherent)."""
  n = coherence.shape[0]
  depth = jnp.arange(n).reshape((n,) + (1,) * (coherence.ndim - 1))
  ok = coherence >= min_coherence
  deepest = jnp.max(jnp.where(ok, depth, -1), axis=0)
  return jnp.where(deepest >= 0, deepest, jnp.argmax(coherence, axis=0)).astype(jnp.int32)


def decoded_layer_saliency(forward: Forward, params: Params, batch: Batch,
                           target: Target = None, *, key: PRNGKeyArray | None = None,
                           layer: int | None = None, tau: int = 10,
                           decoder: str = "tied_embeddings", weighting: str = "probability",
                           min_coherence: float = 0.5, vocab_size: int | None = None
                           ) -> Float[Array, "B T"]:
  """Decoded layer saliency at ``layer``, or at each example's deepest coherent layer.

  Args:
    layer: hidden-state index 0..L; ``None`` picks per example with :func:`choose_layer`.
    tau, decoder, weighting, vocab_size: see :func:`decoded_layer_saliency_all`.
    min_coherence: the coherence a layer needs to be chosen automatically.
  Returns:
    ``[B, T]`` float32, non-negative, 0 on padding and special tokens.
  References:
    Hou and Castanon, `Decoding Layer Saliency in Language Transformers
    <https://arxiv.org/abs/2308.05219>`_, ICML 2023.
  """
  sal, coherence = decoded_layer_saliency_all(forward, params, batch, target, key=key, tau=tau,
                                              decoder=decoder, weighting=weighting,
                                              vocab_size=vocab_size)
  if layer is not None:
    if not 0 <= layer < sal.shape[0]:
      raise InputError(f"layer {layer} is out of range; this model has hidden states "
                       f"0..{sal.shape[0] - 1}.")
    return sal[layer]
  chosen = choose_layer(coherence, min_coherence)  # [B]
  return jnp.take_along_axis(sal, chosen[None, :, None], axis=0)[0]
