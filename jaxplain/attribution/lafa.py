r"""LAFA: locally aggregated feature attribution (Zhang, Wang, Jiang and Song, NAACL 2022).

A token's score is its base score plus the average, over the input's nearest neighbours in a
reference pool, of the neighbours' token scores weighted by a kernel between word embeddings:

.. math::
   M_{\mathrm{LAFA}}(X_0)_t = M(X_0)_t + \lambda \frac{1}{|\mathcal{X}_{sim}|}
   \sum_{i \in \mathcal{X}_{sim}} \sum_{k=1}^{T_i} m_{i,k}\, \kappa(h_t, h_{i,k}) / T_i

(Eq. 6-7). Neighbours come from one hidden layer of the explained model itself, pooled over
tokens, searched by brute force (a matmul and ``lax.top_k`` over chunks of the pool), and kept
when closer than a cut-off set as a quantile of sampled pairwise distances (Eq. 4). The pool's
base scores are computed once (:func:`build_index`) and reused for every query.

Our choices where the paper is silent (unverified, named options): mean pooling over real tokens
(``pooling="cls"`` as the alternative); the input itself is excluded from its neighbours when it
is in the pool (``exclude_self``); same-class restriction uses the pool's labels as given.
"""

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from jaxplain._compile import jit as _jit
from jaxplain.attribution._common import (embed, grad_wrt_embeddings, masked, resolve_target)
from jaxplain.contracts import Batch, Forward, Params, Taps, Target
from jaxplain.errors import InputError

KERNELS = ("indicator", "cosine", "rbf", "laplacian", "l2", "cubic")
BASES = ("gradient_sq", "input_gradient_sq", "smoothgrad_sq")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class NeighbourIndex:
  """A reference pool ready for LAFA queries.

  Attributes:
    vectors: ``[P, H]`` pooled hidden states of the pool at ``layer``.
    input_ids: ``[P, T]`` the pool's token ids (padding 0 under ``attention_mask``).
    attention_mask: ``[P, T]``.
    scores: ``[P, T]`` the pool's base scores ``m_{i,k}`` (0 on padding and special tokens).
    labels: ``[P]`` class per pool example (-1 when unknown).
    cutoff: ``[]`` the L2 distance cut-off epsilon.
    layer: static hidden-state index the vectors were read from.
    pooling: static pooling name.
  """

  vectors: Float[Array, "P H"]
  input_ids: Int[Array, "P T"]
  attention_mask: Int[Array, "P T"]
  scores: Float[Array, "P T"]
  labels: Int[Array, " P"]
  cutoff: Float[Array, ""]
  layer: int = dataclasses.field(metadata=dict(static=True), default=2)
  pooling: str = dataclasses.field(metadata=dict(static=True), default="mean")

  def __len__(self) -> int:
    return int(self.vectors.shape[0])


def pool_hidden(forward: Forward, params: Params, batch: Batch, layer: int,
                pooling: str = "mean") -> Float[Array, "B H"]:
  """Sentence vectors from ``hidden[layer]``: mean over real tokens, or the ``[CLS]`` state."""
  hidden = forward(params, batch, Taps()).hidden
  if not 0 <= layer < hidden.shape[0]:
    raise InputError(f"layer {layer} is out of range; this model has hidden states 0.."
                     f"{hidden.shape[0] - 1}.")
  h = hidden[layer]
  if pooling == "cls":
    return h[:, 0]
  if pooling != "mean":
    raise InputError(f"unknown pooling {pooling!r}; use 'mean' or 'cls'.")
  m = batch.attention_mask[..., None].astype(h.dtype)
  return (h * m).sum(1) / jnp.maximum(m.sum(1), 1.0)


def base_scores(forward: Forward, params: Params, batch: Batch, target: Target = None, *,
                base: str = "gradient_sq", key: PRNGKeyArray | None = None, samples: int = 25,
                stdev: float = 0.15) -> Float[Array, "B T"]:
  r"""The paper's base scores ``M(X)``: squared gradients summed over the embedding axis (Eq. 3).

  ``gradient_sq``: :math:`\sum_j S_{ij}^2`; ``input_gradient_sq``: :math:`\sum_j (h_{ij}S_{ij})^2`;
  ``smoothgrad_sq``: the gradient averaged over ``samples`` noisy copies
  :math:`h + \epsilon, \epsilon \sim N(0, \mathrm{stdev}^2)`, then squared and summed (the
  paper's Case II base, 25 samples; its noise level is not given, ``stdev`` is ours).

  Returns:
    ``[B, T]`` float32, non-negative, 0 on padding and special tokens (``word_ids == -1``).
  """
  if base not in BASES:
    raise InputError(f"unknown LAFA base {base!r}; use one of {', '.join(BASES)}.")
  target = resolve_target(forward, params, batch, target)
  x = embed(forward, params, batch)
  if base == "smoothgrad_sq":
    if key is None:
      raise InputError("LAFA with base='smoothgrad_sq' needs a PRNG key.")
    keys = jax.random.split(key, samples)

    def one(k):
      noisy = x + stdev * jax.random.normal(k, x.shape, x.dtype)
      return grad_wrt_embeddings(forward, params, batch, target, noisy)

    g = jax.lax.map(one, keys).mean(0)
  else:
    g = grad_wrt_embeddings(forward, params, batch, target, x)
  if base == "input_gradient_sq":
    g = g * x
  real = batch.attention_mask
  if batch.word_ids is not None:
    real = real * (batch.word_ids >= 0)
  return masked(jnp.sum(g * g, -1), real)


def kernel_matrix(kernel: str, a: Float[Array, "T E"], b: Float[Array, "U E"],
                  ids_a: Int[Array, " T"], ids_b: Int[Array, " U"]) -> Float[Array, "T U"]:
  """The paper's Appendix E kernels between two sets of word embeddings.

  ``rbf``: :math:`\\exp(-\\lVert a-b\\rVert_2 / l^2)`, ``laplacian``:
  :math:`\\exp(-\\lVert a-b\\rVert_1/l^2)` with l = 2; ``cubic``: :math:`(\\gamma a^\\top b)^3`
  with gamma = 7, c0 = 0; ``l2``: :math:`1/\\mathrm{clip}(\\lVert a-b\\rVert_2, 0.3, 3)`;
  ``cosine``; ``indicator``: same token id.
  """
  if kernel == "indicator":
    return (ids_a[:, None] == ids_b[None, :]).astype(jnp.float32)
  if kernel == "cosine":
    na = a / jnp.maximum(jnp.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    nb = b / jnp.maximum(jnp.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    return na @ nb.T
  if kernel == "cubic":
    return (7.0 * (a @ b.T)) ** 3
  diff = a[:, None, :] - b[None, :, :]
  if kernel == "laplacian":
    return jnp.exp(-jnp.abs(diff).sum(-1) / 4.0)
  l2 = jnp.sqrt(jnp.maximum((diff * diff).sum(-1), 0.0))
  if kernel == "rbf":
    return jnp.exp(-l2 / 4.0)
  if kernel == "l2":
    return 1.0 / jnp.clip(l2, 0.3, 3.0)
  raise InputError(f"unknown LAFA kernel {kernel!r}; use one of {', '.join(KERNELS)}.")


def nearest(vectors: Float[Array, "P H"], queries: Float[Array, "B H"], k: int,
            chunk_size: int | None = None) -> tuple[Float[Array, "B k"], Int[Array, "B k"]]:
  """The ``k`` nearest pool vectors to each query by L2 distance, brute force.

  The pool is scanned in chunks of ``chunk_size`` rows, keeping a running top-k, so a pool
  larger than device memory for one distance matrix still works; placed on a sharded array,
  the per-chunk matmul runs on every device.

  Returns:
    ``(distances [B, k], indices [B, k])``, nearest first.
  """
  p = vectors.shape[0]
  if k > p:
    raise InputError(f"asked for {k} neighbours from a pool of {p}; use a larger pool or a "
                     "smaller number of neighbours.")
  chunk = p if chunk_size is None else min(int(chunk_size), p)
  pad = (-p) % chunk
  z = jnp.pad(vectors, ((0, pad), (0, 0)))
  valid = jnp.arange(p + pad) < p
  qq = (queries * queries).sum(-1, keepdims=True)

  def step(carry, i):
    best_d, best_i = carry
    zc = jax.lax.dynamic_slice_in_dim(z, i * chunk, chunk)
    vc = jax.lax.dynamic_slice_in_dim(valid, i * chunk, chunk)
    d2 = qq - 2.0 * queries @ zc.T + (zc * zc).sum(-1)[None]
    d2 = jnp.where(vc[None], jnp.maximum(d2, 0.0), jnp.inf)
    cand_d = jnp.concatenate([best_d, d2], 1)
    cand_i = jnp.concatenate([best_i, i * chunk + jnp.arange(chunk)[None].repeat(
        queries.shape[0], 0)], 1)
    neg, order = jax.lax.top_k(-cand_d, k)
    return (-neg, jnp.take_along_axis(cand_i, order, 1)), None

  init = (jnp.full((queries.shape[0], k), jnp.inf), jnp.zeros((queries.shape[0], k), jnp.int32))
  (d2, idx), _ = jax.lax.scan(step, init, jnp.arange((p + pad) // chunk))
  return jnp.sqrt(d2), idx


def distance_quantile(vectors: Float[Array, "P H"], quantile: float, *, key: PRNGKeyArray,
                      pairs: int = 10000) -> Float[Array, ""]:
  """The ``quantile`` of L2 distances over ``pairs`` random distinct pool pairs (the cut-off)."""
  if not 0.0 < quantile <= 1.0:
    raise InputError(f"quantile {quantile} must be in (0, 1].")
  p = vectors.shape[0]
  ka, kb = jax.random.split(key)
  a = jax.random.randint(ka, (pairs,), 0, p)
  b = (a + jax.random.randint(kb, (pairs,), 1, p)) % p  # never a == b
  d = jnp.linalg.norm(vectors[a] - vectors[b], axis=-1)
  return jnp.quantile(d, quantile)


def build_index(forward: Forward, params: Params, batches: list[Batch], *, layer: int = 2,
                pooling: str = "mean", base: str = "gradient_sq",
                targets: list[Target] | None = None, labels: np.ndarray | None = None,
                quantile: float = 0.05, key: PRNGKeyArray | None = None,
                score_fn: Callable | None = None, **base_hyper) -> NeighbourIndex:
  """Encodes a reference pool once: pooled vectors, base scores, and the distance cut-off.

  Args:
    forward, params: the explained model.
    batches: the pool, as padded batches (padded to one common length here).
    layer: hidden-state index used as the neighbour encoder (the paper's Case II: layer 2).
    pooling: ``"mean"`` (default, ours) or ``"cls"``.
    base: base score of the pool tokens (see :func:`base_scores`).
    targets: per batch, the explained class (``None`` = predicted), as for the queries.
    labels: ``[P]`` pool classes for same-class restriction (gold or predicted: the caller's
      choice; the paper restricts SST neighbours to the same sentiment category).
    quantile: cut-off epsilon as this quantile of sampled pairwise distances (App. D.1: 0.05).
    key: PRNG key (pair sampling, SmoothGrad noise).
    score_fn: optional jitted ``(params, batch, target, key) -> [B, T]`` replacing the base.
  Returns:
    A :class:`NeighbourIndex`.
  """
  if not batches:
    raise InputError("the LAFA reference pool is empty; pass at least two texts.")
  key = jax.random.key(0) if key is None else key
  t = max(b.input_ids.shape[1] for b in batches)
  pooled = _jit(pool_hidden, static_argnums=(0, 3, 4))
  if score_fn is None:
    score_fn = _jit(lambda p, b, tg, k: base_scores(forward, p, b, tg, base=base, key=k,
                                                    **base_hyper))
  vecs, ids, masks, scores = [], [], [], []
  for i, b in enumerate(batches):
    b = b.device_part() if b.word_ids is None else Batch(
        b.input_ids, b.attention_mask, b.token_type_ids, b.word_ids)
    tg = None if targets is None else targets[i]
    vecs.append(np.asarray(pooled(forward, params, b.device_part(), layer, pooling)))
    s = np.asarray(score_fn(params, b, tg, jax.random.fold_in(key, i)))
    width = ((0, 0), (0, t - s.shape[1]))
    scores.append(np.pad(s, width))
    ids.append(np.pad(np.asarray(b.input_ids), width))
    masks.append(np.pad(np.asarray(b.attention_mask), width))
  vectors = jnp.asarray(np.concatenate(vecs))
  if vectors.shape[0] < 2:
    raise InputError("the LAFA reference pool needs at least two texts.")
  lab = (np.full(vectors.shape[0], -1, np.int32) if labels is None
         else np.asarray(labels, np.int32))
  if lab.shape != (vectors.shape[0],):
    raise InputError(f"{lab.shape[0]} pool labels for {vectors.shape[0]} pool texts.")
  cutoff = distance_quantile(vectors, quantile, key=jax.random.fold_in(key, len(batches)))
  return NeighbourIndex(vectors=vectors, input_ids=jnp.asarray(np.concatenate(ids)),
                        attention_mask=jnp.asarray(np.concatenate(masks)),
                        scores=jnp.asarray(np.concatenate(scores)), labels=jnp.asarray(lab),
                        cutoff=cutoff, layer=layer, pooling=pooling)


def lafa(forward: Forward, params: Params, batch: Batch, target: Target = None, *,
         key: PRNGKeyArray | None = None, index: NeighbourIndex | None = None,
         neighbours: int = 10, lam: float = 0.44, kernel: str = "indicator",
         base: str = "gradient_sq", query_labels: Int[Array, " B"] | None = None,
         exclude_self: bool = True, chunk_size: int | None = None, samples: int = 25,
         stdev: float = 0.15) -> Float[Array, "B T"]:
  """LAFA scores: base scores plus the kernel-weighted neighbour aggregate (Eq. 6-7).

  Args:
    forward, params, batch, target: as every method.
    key: PRNG key (SmoothGrad base).
    index: the reference pool from :func:`build_index` (same model, same ``base``).
    neighbours: M, the most neighbours kept (paper: 10); a smaller pool simply gives fewer.
    lam: the weight lambda of the aggregate (paper's SST case: 0.44).
    kernel: one of :data:`KERNELS` (SST case: indicator).
    base: the base method, as in :func:`base_scores` (must match the index's).
    query_labels: ``[B]`` classes for same-class restriction (``None``: no restriction).
    exclude_self: drop pool entries at distance 0 (the input itself when it is in the pool).
    chunk_size: pool rows per distance chunk.
  Returns:
    ``[B, T]`` float32, non-negative for non-negative kernels, 0 on padding.
  Notes:
    With no neighbour inside the cut-off, LAFA equals the base method (as in the paper).
  References:
    Zhang et al., `Locally Aggregated Feature Attribution on Natural Language Model
    Understanding <https://arxiv.org/abs/2204.10893>`_, NAACL 2022.
  """
  if index is None:
    raise InputError("LAFA needs a reference pool: pass index=build_index(...) "
                     "(or a pool of texts through jaxplain.attribute(..., pool=[...])).")
  if kernel not in KERNELS:
    raise InputError(f"unknown LAFA kernel {kernel!r}; use one of {', '.join(KERNELS)}.")
  if neighbours < 1:
    raise InputError(f"neighbours must be >= 1, got {neighbours}.")
  m0 = base_scores(forward, params, batch, target, base=base, key=key, samples=samples,
                   stdev=stdev)
  q = pool_hidden(forward, params, batch.device_part(), index.layer, index.pooling)
  k = min(neighbours + int(exclude_self), len(index))
  dist, idx = nearest(index.vectors, q, k, chunk_size)
  keep = dist < index.cutoff
  if exclude_self:
    keep = keep & (dist > 1e-6)
  if query_labels is not None:
    keep = keep & (index.labels[idx] == jnp.asarray(query_labels)[:, None])
  # Keep at most `neighbours` of the valid ones (they are sorted nearest first).
  keep = keep & (jnp.cumsum(keep, axis=1) <= neighbours)
  emb_q = embed(forward, params, batch)  # [B, T, E]
  nb_ids = index.input_ids[idx]  # [B, k, U]
  nb_mask = index.attention_mask[idx]
  nb_scores = index.scores[idx]
  nb_len = jnp.maximum(nb_mask.sum(-1), 1).astype(jnp.float32)  # T_i, [B, k]
  nb_emb = embed(forward, params, Batch(nb_ids.reshape(-1, nb_ids.shape[-1]),
                                        nb_mask.reshape(-1, nb_ids.shape[-1]),
                                        jnp.zeros_like(nb_ids.reshape(-1, nb_ids.shape[-1]))))
  nb_emb = nb_emb.reshape(nb_ids.shape + (emb_q.shape[-1],))  # [B, k, U, E]

  def one(eq, iq, ne, ni, ns, nl, kp):  # one query against its k neighbours
    def per_nb(e, i, s, n):
      return kernel_matrix(kernel, eq, e, iq, i) @ s / n  # [T]
    agg = jax.vmap(per_nb)(ne, ni, ns, nl)  # [k, T]
    w = kp.astype(jnp.float32)
    return (agg * w[:, None]).sum(0) / jnp.maximum(w.sum(), 1.0)

  e = jax.vmap(one)(emb_q, batch.input_ids, nb_emb, nb_ids, nb_scores, nb_len, keep)
  real = batch.attention_mask
  if batch.word_ids is not None:
    real = real * (batch.word_ids >= 0)
  return masked(m0 + lam * e, real)
