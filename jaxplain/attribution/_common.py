"""Pieces every attribution kernel shares: targets, mask-aware reductions, embedding lookups."""

from typing import Any, Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from jaxplain.contracts import Batch, Forward, Outputs, Params, Taps, Target
from jaxplain.errors import InputError


def masked(x: Float[Array, "... B T"], mask: Int[Array, "B T"]) -> Float[Array, "... B T"]:
  """Zeroes padding positions: ``x * (mask > 0)``, kept in float32."""
  return jnp.where(mask > 0, x, 0.0).astype(jnp.float32)


def resolve_target(forward: Forward, params: Params, batch: Batch,
                   target: Target) -> Int[Array, " B"] | Callable[[Outputs], Float[Array, " B"]]:
  """Turns ``target`` into per-example classes ``[B]`` (or keeps a callable).

  ``None`` means the class predicted for the unmodified input; it is then held fixed along IG
  paths, noise samples and removal levels (as Captum does with a fixed ``target``).

  On a packed batch (``batch.packing``) a class target is per slot (an int or ``[B, S]``) and
  becomes the callable :func:`packed_target`: each row's sum of its slots' target logits.
  """
  if callable(target):
    return target
  if batch.packing is not None:
    return packed_target(slot_classes(forward, params, batch, target), batch.packing.starts)
  b = batch.input_ids.shape[0]
  if target is None:
    logits = forward(params, batch, Taps()).logits
    return jnp.argmax(logits.reshape(b, -1), axis=-1).astype(jnp.int32)
  target = jnp.asarray(target, jnp.int32)
  if target.ndim > 1 or target.size not in (1, b):
    raise InputError(f"target has shape {tuple(target.shape)}; pass one class per example "
                     f"({b}), one class for all, or None for the predicted ones.")
  return jnp.broadcast_to(target.reshape(-1) if target.ndim else target, (b,))


def first_tokens(batch: Batch) -> Array:
  """``bool [B, T]``: each example's first token (its ``[CLS]``): position 0, or in a packed
  batch each packed example's first (:meth:`jaxplain.Packing.first_tokens`)."""
  if batch.packing is not None:
    return batch.packing.first_tokens()
  return jnp.broadcast_to(jnp.arange(batch.input_ids.shape[1]) == 0, batch.input_ids.shape)


def slot_classes(forward: Forward, params: Params, batch: Batch,
                 target: Any) -> Int[Array, "B S"]:
  """A packed batch's class per slot ``[B, S]``: ``target`` (an int or ``[B, S]``), or each
  slot's predicted class for ``None``."""
  starts = batch.packing.starts
  if target is None:
    logits = forward(params, batch, Taps()).logits
    return jnp.argmax(logits.reshape(starts.shape + (-1,)), axis=-1).astype(jnp.int32)
  return jnp.broadcast_to(jnp.asarray(target, jnp.int32), starts.shape)


def target_logit(outputs: Outputs,
                 target: Int[Array, " B"] | Callable[[Outputs], Float[Array, " B"]]
                 ) -> Float[Array, " B"]:
  """The explained scalar per example: ``logits[b, target[b]]``, or ``target(outputs)``.

  Logits with more than one axis per example (token classification ``[B, T, C]``, question
  answering ``[B, T, 2]``) are indexed flattened, ``[B, T * C]``: a QA start logit at position
  ``t`` is class ``2 t``, its end ``2 t + 1``; ``None`` explains the largest of all. A callable
  (``lambda out: out.logits[jnp.arange(B), starts, 0]``) is usually clearer.
  """
  if callable(target):
    value, b = target(outputs), outputs.logits.shape[0]
    if jnp.shape(value) != (b,):
      raise InputError(
          f"a callable target must return one scalar per example, shape [B]; given logits of "
          f"shape {tuple(outputs.logits.shape)} it returned shape {tuple(jnp.shape(value))}. "
          "Reduce them to one value per example, e.g. "
          "lambda out: out.logits[:, 1] - out.logits[:, 0].")
    return jnp.asarray(value).astype(jnp.float32)
  logits = outputs.logits.reshape(outputs.logits.shape[0], -1)
  return jnp.take_along_axis(logits, target[:, None], axis=1)[:, 0].astype(jnp.float32)


def slot_logits(outputs: Outputs, classes: Int[Array, "B S"],
                starts: Int[Array, "B S"]) -> Float[Array, "B S"]:
  """A packed batch's ``logits[b, s, classes[b, s]]`` per filled slot, 0 for empty ones
  (``starts < 0``); logits past the slot axis are indexed flattened."""
  logits = outputs.logits.reshape(starts.shape + (-1,))
  picked = jnp.take_along_axis(logits, classes[..., None], axis=-1)[..., 0]
  return jnp.where(starts >= 0, picked, 0.0).astype(jnp.float32)


def packed_target(classes: Int[Array, "B S"],
                  starts: Int[Array, "B S"]) -> Callable[[Outputs], Float[Array, " B"]]:
  """The explained scalar of a packed row: the sum of its slots' target logits ``[B]``.

  Examples in a row do not interact, so its gradient at a token is the gradient of that token's
  own example's target logit.
  """
  return lambda outputs: slot_logits(outputs, classes, starts).sum(-1)


def embed(forward: Forward, params: Params, batch: Batch) -> Float[Array, "B T E"]:
  """The word-piece embeddings the model looks up for ``batch`` (before positions/segments)."""
  return forward(params, batch, Taps()).word_embeddings


def embedding_table(forward: Forward, params: Params, batch: Batch,
                    token_id: int) -> Float[Array, " E"]:
  """The embedding row of one token id (``[MASK]``, ``[PAD]``...), via the model's own lookup."""
  one = Batch(jnp.full((1, 1), token_id, jnp.int32), jnp.ones((1, 1), jnp.int32),
              jnp.zeros((1, 1), jnp.int32))
  del batch
  return embed(forward, params, one)[0, 0]


def grad_wrt_embeddings(forward: Forward, params: Params, batch: Batch, target,
                        embeddings: Float[Array, "B T E"], rules: str = "gradient"
                        ) -> Float[Array, "B T E"]:
  """``d target_logit / d word_embeddings`` at ``embeddings``, one backward pass for the batch.

  Examples do not interact, so the gradient of the sum over the batch is every example's own.
  """
  def f(e):
    return target_logit(forward(params, batch, Taps(word_embeddings=e, rules=rules)),
                        target).sum()
  return jax.grad(f)(embeddings.astype(jnp.float32))


def target_and_grad(forward: Forward, params: Params, batch: Batch, target: Target,
                    embeddings: Float[Array, "B T E"] | None = None, rules: str = "gradient"
                    ) -> tuple[Any, Float[Array, "B T E"], Float[Array, "B T E"]]:
  """``(target, word embeddings x, d target_logit / d x)`` at the batch's own embeddings.

  With ``target=None`` and no ``embeddings`` the predicted class comes from the primal output of
  the same ``jax.vjp`` whose pullback gives the gradient: one forward and one backward pass, not
  the extra forward of :func:`resolve_target` (a third of a plain gradient method's work).
  Otherwise it is :func:`resolve_target` followed by :func:`grad_wrt_embeddings`.
  """
  if target is not None or embeddings is not None:
    target = resolve_target(forward, params, batch, target)
    x = embed(forward, params, batch) if embeddings is None else embeddings
    return target, x, grad_wrt_embeddings(forward, params, batch, target, x, rules)
  _, predicted, x, g = logits_and_grad(forward, params, batch, None, rules)
  if batch.packing is None:
    return predicted, x, g
  return packed_target(predicted, batch.packing.starts), x, g


def logits_and_grad(forward: Forward, params: Params, batch: Batch,
                    classes: Int[Array, "..."] | int | None = None, rules: str = "gradient"
                    ) -> tuple[Float[Array, "..."], Int[Array, "..."], Float[Array, "B T E"],
                               Float[Array, "B T E"]]:
  """``(logits, classes, x, d logit_class / d x)`` from one forward and one backward pass.

  The logits are the primal output of the ``jax.vjp`` whose pullback gives the gradient at the
  batch's own word embeddings ``x``, flattened per example (``[B, K]``), or per slot of a packed
  batch (``[B, S, K]``). ``classes`` (an int, ``[B]``, or ``[B, S]`` when packed) picks the
  logit; ``None`` picks the largest, the predicted class. Empty slots get no cotangent.
  """
  x = embed(forward, params, batch).astype(jnp.float32)
  rows = example_axes(batch)

  def logits_of(e):
    return forward(params, batch, Taps(word_embeddings=e, rules=rules)).logits.reshape(rows + (-1,))

  logits, pullback = jax.vjp(logits_of, x)
  classes, cotangent = class_cotangent(logits, classes, batch)
  (g,) = pullback(cotangent)
  return logits, classes, x, g


def example_axes(batch: Batch) -> tuple[int, ...]:
  """The axes of per-example values (logits, keys): ``(B,)``, or ``(B, S)`` slots when packed."""
  return (batch.input_ids.shape[0],) if batch.packing is None else batch.packing.starts.shape


def class_cotangent(logits: Float[Array, "... K"], classes: Int[Array, "..."] | int | None,
                    batch: Batch) -> tuple[Int[Array, "..."], Float[Array, "... K"]]:
  """``(classes, one-hot cotangent)`` that pulls back the explained logit of each example.

  ``logits`` are ``[B, K]`` (``[B, S, K]`` per slot when packed); ``classes`` an int, one per
  example (slot), or ``None``: the largest logit, the predicted class. Empty slots of a packed
  batch get a zero cotangent.
  """
  rows = logits.shape[:-1]
  if classes is None:
    classes = jnp.argmax(logits, axis=-1).astype(jnp.int32)
  else:
    classes = jnp.broadcast_to(jnp.asarray(classes, jnp.int32), rows)
  cotangent = jax.nn.one_hot(classes, logits.shape[-1], dtype=logits.dtype)
  if batch.packing is not None:
    cotangent = cotangent * (batch.packing.starts >= 0)[..., None].astype(logits.dtype)
  return classes, cotangent
