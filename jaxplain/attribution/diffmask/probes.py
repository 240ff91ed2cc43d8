r"""DiffMask's gate predictors: one weight-normalised probe MLP per hidden-state index.

DiffMask reads hidden states at ``K = L + 2`` indices: index 0 is the raw word-piece embedding
(before position and segment embeddings), index ``k = 1..L+1`` is ``Outputs.hidden[k - 1]`` (the
state entering layer ``k - 1``; ``L + 1`` is the last layer's output). Probe ``k`` maps a token's
state to a gate logit,

.. math:: \alpha = 10 \tanh\big(w_2^\top \tanh(W_1 x + b_1) + b_2\big) + b,\qquad b_{init} = 5,

with weight-normalised ``W_1, w_2`` (``w = g v / \|v\|`` per output unit, ``g`` initialised to
``\|v\|``), so logits lie in ``[b - 10, b + 10]`` and gates start open (``P(keep) ~ 0.995``).
The input variant's probe ``k`` reads ``[h^{(0)}; h^{(k)}]``, the hidden variant's reads
``h^{(k)}``. All ``K`` probes are stacked on a leading axis so that every parameter, and every
optimiser state built from them, has the layer on axis 0.

States narrower than ``W = max(E, H)`` (ELECTRA's embeddings) are zero-padded to ``W``.
Defaults match the authors' ``MLPMaxGate`` (``diffmask/models/gates.py``), hidden width
``hidden_size // 4`` and PyTorch's default ``Linear`` initialisation.
"""

import dataclasses

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

VARIANTS = ("input", "hidden")
PROBE_SCALE = 10.0
"""``max_activation`` of the authors' ``MLPMaxGate``: logits span ``bias +- 10``."""
PROBE_BIAS_INIT = 5.0
"""Initial scalar bias ``b`` of each probe: gates start open."""


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Gates:
  """Trained (or initial) DiffMask gates for one model shape: a pytree.

  Attributes:
    probes: stacked probe parameters, each with leading axis ``K = num_layers + 2``:
      ``v1 [K, Din, P]``, ``g1 [K, P]``, ``b1 [K, P]``, ``v2 [K, P]``, ``g2 [K]``, ``b2 [K]``,
      ``bias [K]``.
    baseline: the replacement vector(s): ``[1, E]`` for the input variant (shared by every
      position), ``[K, W]`` for the hidden variant (one per index).
    variant: ``"input"`` or ``"hidden"`` (static).
    num_layers: ``L`` of the model the gates were trained for (static).
    hidden_size: ``H`` of that model (static).
    embedding_size: ``E`` of that model (static).
  """

  probes: dict[str, Float[Array, "..."]]
  baseline: Float[Array, "_ W"]
  variant: str = dataclasses.field(default="input", metadata=dict(static=True))
  num_layers: int = dataclasses.field(default=0, metadata=dict(static=True))
  hidden_size: int = dataclasses.field(default=0, metadata=dict(static=True))
  embedding_size: int = dataclasses.field(default=0, metadata=dict(static=True))

  @property
  def num_states(self) -> int:
    """``K = L + 2`` hidden-state indices (word embeddings, then ``Outputs.hidden``)."""
    return self.num_layers + 2

  @property
  def width(self) -> int:
    """``W = max(E, H)``: states are zero-padded to this width."""
    return max(self.hidden_size, self.embedding_size)


def _uniform(key, shape, fan_in):
  bound = 1.0 / float(fan_in) ** 0.5  # torch.nn.Linear default (kaiming_uniform a=sqrt(5))
  return jax.random.uniform(key, shape, jnp.float32, -bound, bound)


def init_probes(key: PRNGKeyArray, num_states: int, in_features: int,
                width: int) -> dict[str, Float[Array, "..."]]:
  """``K`` stacked ``MLPMaxGate`` probes ``in_features -> width -> 1`` (PyTorch init)."""
  k1, k2, k3, k4 = jax.random.split(key, 4)
  v1 = _uniform(k1, (num_states, in_features, width), in_features)
  v2 = _uniform(k3, (num_states, width), width)
  return {
      "v1": v1, "g1": jnp.linalg.norm(v1, axis=1), "b1": _uniform(k2, (num_states, width),
                                                                  in_features),
      "v2": v2, "g2": jnp.linalg.norm(v2, axis=1), "b2": _uniform(k4, (num_states,), width),
      "bias": jnp.full((num_states,), PROBE_BIAS_INIT, jnp.float32),
  }


def _normalised(v, g, axis):
  norm = jnp.sqrt(jnp.sum(jnp.square(v), axis=axis, keepdims=True) + 1e-12)
  return v * (jnp.expand_dims(g, axis) / norm)


def probe_logits(probes: dict[str, Float[Array, "..."]],
                 x: Float[Array, "K B T Din"]) -> Float[Array, "K B T"]:
  """Every probe on its own input: probe ``k`` reads ``x[k]``; returns logits ``[K, B, T]``."""
  w1 = _normalised(probes["v1"], probes["g1"], axis=1)                    # [K Din P]
  w2 = _normalised(probes["v2"], probes["g2"], axis=1)                    # [K P]
  h = jnp.tanh(jnp.einsum("kbtd,kdp->kbtp", x, w1) + probes["b1"][:, None, None, :])
  o = jnp.tanh(jnp.einsum("kbtp,kp->kbt", h, w2) + probes["b2"][:, None, None])
  return PROBE_SCALE * o + probes["bias"][:, None, None]


def probe_logits_at(probes: dict[str, Float[Array, "..."]], index: Array | int,
                    x: Float[Array, "B T Din"]) -> Float[Array, "B T"]:
  """Probe ``index`` alone (a traced index is fine): logits ``[B, T]``."""
  one = jax.tree.map(lambda a: jax.lax.dynamic_index_in_dim(a, index, 0, keepdims=True), probes)
  return probe_logits(one, x[None])[0]


def init_gates(key: PRNGKeyArray, *, variant: str, num_layers: int, hidden_size: int,
               embedding_size: int, probe_width: int | None = None,
               baseline: Float[Array, "_ W"] | None = None) -> Gates:
  """Fresh gates for a model with ``L`` layers, hidden size ``H`` and embedding size ``E``.

  Args:
    key: PRNG key for the probes (and a Xavier-normal baseline when ``baseline`` is None).
    variant: ``"input"`` (gates on word embeddings) or ``"hidden"`` (on the state at a layer).
    num_layers, hidden_size, embedding_size: ``L``, ``H``, ``E`` of the analysed model.
    probe_width: probe hidden width; ``None`` = ``hidden_size // 4`` (authors).
    baseline: initial baseline ``[1, E]`` (input) or ``[K, W]`` (hidden); ``None`` draws it
      Xavier-normal as the authors do without an init vector.
  Returns:
    :class:`Gates`.
  """
  if variant not in VARIANTS:
    raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
  k = num_layers + 2
  w = max(hidden_size, embedding_size)
  width = probe_width or max(1, hidden_size // 4)
  in_features = embedding_size + w if variant == "input" else w
  kp, kb = jax.random.split(key)
  shape = (1, embedding_size) if variant == "input" else (k, w)
  if baseline is None:
    std = (2.0 / (1 + shape[-1])) ** 0.5  # xavier_normal_ on the authors' [1, 1, D] tensor
    baseline = std * jax.random.normal(kb, shape, jnp.float32)
  baseline = jnp.broadcast_to(jnp.asarray(baseline, jnp.float32), shape)
  return Gates(init_probes(kp, k, in_features, width), baseline, variant, num_layers,
               hidden_size, embedding_size)
