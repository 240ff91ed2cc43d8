"""The data carriers every layer of jaxplain agrees on: Batch, Taps, Outputs, Target, Method.

A model is the pure function ``forward(params, batch, taps) -> Outputs``. An attribution method is
``method(forward, params, batch, target, *, key=None, **hyper) -> Float[Array, "B T"]``. Methods
never reach into a model: what they need goes in through :class:`Taps` and comes back in
:class:`Outputs`.

Axis glossary (used in docstrings, jaxtyping strings and variable names):

=====  ==========================================
``B``  batch
``T``  tokens
``H``  hidden
``E``  embedding width (``H`` except ELECTRA)
``L``  layers (``L1`` = L+1, with the embeddings)
``N``  heads
``D``  head dim
``C``  classes
``V``  vocabulary
``S``  integration steps
``K``  noise samples
``R``  removal levels
=====  ==========================================
"""

import dataclasses
from typing import Any, Callable, Protocol, Union

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

Params = Any  # a pytree of arrays (an ``nnx.State``)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Packing:
  """Several examples in one row (sequence packing): how a packed :class:`Batch` is laid out.

  Each row holds up to ``S`` examples back to back, each with its own special tokens; a token
  attends only to the tokens of its own example, and positions restart at 0 for each example, so
  every example's outputs are those it has alone (to float tolerance). A packed batch's logits
  are ``[B, S, ...]``, one row per slot. Built by :func:`jaxplain.models.packing.pack`.

  Attributes:
    position_ids: ``int32 [B, T]`` each token's position in its own example; 0 on padding.
    segment_ids: ``int32 [B, T]`` ``1 + s`` on the tokens of the row's ``s``-th example, 0 on
      padding.
    starts: ``int32 [B, S]`` the position of each example's first token; ``-1`` for empty slots.
  """

  position_ids: Int[Array, "B T"]
  segment_ids: Int[Array, "B T"]
  starts: Int[Array, "B S"]

  def slot_mask(self) -> Float[Array, "B T S"]:
    """``1.0`` where token ``t`` belongs to the row's example in slot ``s``, float32."""
    slots = jnp.arange(1, self.starts.shape[1] + 1)
    return (self.segment_ids[:, :, None] == slots[None, None, :]).astype(jnp.float32)

  def token_slots(self) -> Int[Array, "B T"]:
    """The slot of each token's example; padding reads slot 0 (mask it where that matters)."""
    return jnp.maximum(self.segment_ids - 1, 0)

  def token_starts(self) -> Int[Array, "B T"]:
    """The position of each token's example's first token (its ``[CLS]``); 0 on padding."""
    return jnp.where(self.segment_ids > 0, jnp.take_along_axis(
        jnp.maximum(self.starts, 0), self.token_slots(), axis=1), 0)

  def first_tokens(self) -> Array:
    """``bool [B, T]``: each example's first token (its ``[CLS]``)."""
    t = self.segment_ids.shape[1]
    return (jnp.arange(t)[None, :] == self.token_starts()) & (self.segment_ids > 0)

  def same_example(self) -> Array:
    """``bool [B, T, T]``: tokens ``i`` and ``j`` belong to the same example (not padding)."""
    seg = self.segment_ids
    return (seg[:, :, None] == seg[:, None, :]) & (seg[:, :, None] > 0)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Batch:
  """A padded batch of token ids; padding is always ``attention_mask == 0``.

  Attributes:
    input_ids: ``int32 [B, T]``.
    attention_mask: ``int32 [B, T]``, 1 on real tokens (special tokens included), 0 on padding.
    token_type_ids: ``int32 [B, T]`` segment ids (zeros for single texts).
    word_ids: ``int32 [B, T]`` index of the word each token belongs to, counted across both
      texts of a pair; ``-1`` on special tokens and padding. ``None`` when unknown.
    offsets: ``int32 [B, T, 2]`` character span ``[start, end)`` of each token in its own text;
      ``(0, 0)`` on special tokens and padding. ``None`` when unknown.
    sequence_ids: ``int32 [B, T]``: 0 for the first text, 1 for the second, -1 for special
      tokens and padding. ``None`` when unknown.
    packing: several examples per row (:class:`Packing`); ``None``: one example per row.
  """

  input_ids: Int[Array, "B T"]
  attention_mask: Int[Array, "B T"]
  token_type_ids: Int[Array, "B T"]
  word_ids: Int[Array, "B T"] | None = None
  offsets: Int[Array, "B T 2"] | None = None
  sequence_ids: Int[Array, "B T"] | None = None
  packing: Packing | None = None

  @property
  def shape(self) -> tuple[int, int]:
    return tuple(self.input_ids.shape)  # type: ignore[return-value]

  def __len__(self) -> int:
    return int(self.input_ids.shape[0])

  def take(self, index: Any) -> "Batch":
    """Rows ``index`` of every field (host-side indexing, e.g. ``batch.take(slice(0, 4))``)."""
    return jax.tree.map(lambda x: x[index], self)

  def device_part(self) -> "Batch":
    """The fields the model reads; host-only metadata dropped (cheaper to ship to devices)."""
    return Batch(self.input_ids, self.attention_mask, self.token_type_ids, packing=self.packing)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Taps:
  """What a method asks of the model's insides. ``None`` fields cost nothing.

  Attributes:
    word_embeddings: ``[B, T, E]`` used instead of the word-piece lookup (before position and
      segment embeddings are added): IG, gradient x input, SmoothGrad, DiffMask input gates.
    hidden: ``[B, T, H]`` used instead of ``hidden[hidden_layer]``, the state entering layer
      ``hidden_layer`` (0 = the embeddings' output, ``L`` = the last layer's output, which only
      the head reads). Layers below ``hidden_layer`` are not computed.
    hidden_delta: ``[L+1, B, T, H]`` added to every hidden state; its gradient is
      ``d logit / d hidden[l]`` for all layers in one backward pass.
    attention_delta: ``[L, B, N, T, T]`` added to the attention probabilities; its gradient is
      ``d logit / d A``.
    head_relevance_mask: ``[L, N]`` scales the relevance (the cotangent) flowing back through each
      head's context vectors; the forward pass is unchanged.
    hidden_layer: static index for ``hidden``.
    rules: static name of the backward rules: ``"gradient"`` (plain autodiff), ``"attnlrp"`` or
      ``"cp-lrp"`` (LRP rules through ``stop_gradient`` / ``custom_vjp``).
  """

  word_embeddings: Float[Array, "B T E"] | None = None
  hidden: Float[Array, "B T H"] | None = None
  hidden_delta: Float[Array, "L1 B T H"] | None = None
  attention_delta: Float[Array, "L B N T T"] | None = None
  head_relevance_mask: Float[Array, "L N"] | None = None
  hidden_layer: int = dataclasses.field(default=0, metadata=dict(static=True))
  rules: str = dataclasses.field(default="gradient", metadata=dict(static=True))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Outputs:
  """What the model computed.

  Attributes:
    logits: the head's output. Sequence classification ``[B, C]``; token classification
      ``[B, T, C]``; question answering ``[B, T, 2]`` (start, end); masked LM ``[B, T, V]``;
      no head (``"embedding"``) ``[B, H]``, the mean-pooled last hidden state. A packed batch
      (:class:`Packing`) has one row per slot: ``[B, S, C]`` / ``[B, S, H]``.
    hidden: ``[L+1, B, T, H]``: the embeddings' output, then each layer's output.
    attention: ``[L, B, N, T, T]`` attention probabilities (after ``attention_delta``).
    word_embeddings: ``[B, T, E]`` the word embeddings actually used.
    embedding_parts: ``[3, B, T, E]`` the word, position and token-type embeddings whose sum
      enters the embedding LayerNorm (token type zeros for families without segments); LRP
      reads the position and segment shares of relevance from it. ``None`` from models that
      do not report it.
  """

  logits: Float[Array, "..."]
  hidden: Float[Array, "L1 B T H"]
  attention: Float[Array, "L B N T T"]
  word_embeddings: Float[Array, "B T E"]
  embedding_parts: Float[Array, "3 B T E"] | None = None


Forward = Callable[[Params, Batch, Taps], Outputs]
"""``forward(params, batch, taps) -> Outputs``: the whole model as a pure function."""

Target = Union[int, Int[Array, " B"], np.ndarray, None, Callable[[Outputs], Float[Array, " B"]]]
"""An int class, per-example classes ``[B]``, ``None`` (predicted class) or ``Outputs -> [B]``.

Classes index each example's logits flattened (``[T, 2]`` QA logits: start of ``t`` is ``2 t``)."""


class Method(Protocol):
  """An attribution kernel: pure, unjitted, ``[B, T]`` float32 scores with 0 on padding."""

  def __call__(self, forward: Forward, params: Params, batch: Batch, target: Target = None,
               *, key: PRNGKeyArray | None = None, **hyper: Any) -> Float[Array, "B T"]:
    ...
