"""The authors' synthetic counting task and toy model, in JAX, behind jaxplain's model contract.

Task (``diffmask/models/toy_task.py``): a query of two distinct symbols ``(m, n)`` from a
vocabulary of 10 and a sequence of length uniform in ``1..10`` whose tokens are ``m`` or ``n``
with probability 0.25 each and any other symbol with ``0.5 / 8``; the label is
``count(m) > count(n)``. Only the ``m``/``n`` positions matter: the ground-truth attribution is
uniform over them.

Model: query embeddings ``[q_m; q_n]`` concatenated with each token embedding -> ``Linear(192,
64) -> tanh -> Linear(64, 2)`` (the per-token 2-d "encoder" state) -> GRU(2 -> 64) over the real
tokens -> ``Linear(64, 1)``. It is exposed as ``forward(params, batch, taps) -> Outputs`` so
jaxplain's DiffMask trains on it unchanged:

- ``batch.input_ids`` are the tokens (padding 0, ``attention_mask`` 0), and
  ``batch.token_type_ids`` carries the query as ``m * V + n`` on every position;
- ``Outputs.word_embeddings`` ``[B, T, 64]`` (DiffMask index 0) and ``Outputs.hidden``
  ``[1, B, T, 2]``: the encoder state (index 1; the GRU and head are the "head");
- ``logits`` ``[B, 2] = [0, s]``, so ``softmax(logits) = Bernoulli(sigmoid(s))``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxplain.contracts import Batch, Outputs, Taps

VOCAB, EMB, HID = 10, 64, 64


def make_data(size: int, seed: int = 0, length: int = 10):
  """``(batch, labels)`` of the counting task, numpy, as the authors generate it."""
  rng = np.random.default_rng(seed)
  query = np.stack([rng.choice(VOCAB, 2, replace=False) for _ in range(size)])
  probs = lambda q: [0.25 if i in q else 0.5 / (VOCAB - 2) for i in range(VOCAB)]
  ids = np.stack([rng.choice(VOCAB, length, p=probs(q)) for q in query])
  lengths = rng.integers(1, length + 1, size)
  mask = (np.arange(length)[None] < lengths[:, None]).astype(np.int32)
  ids = np.where(mask > 0, ids, 0).astype(np.int32)
  count = lambda s: ((ids == query[:, s:s + 1]) & (mask > 0)).sum(-1)
  labels = (count(0) > count(1)).astype(np.int32)
  types = np.broadcast_to((query[:, 0] * VOCAB + query[:, 1])[:, None], ids.shape)
  return Batch(ids, mask, types.astype(np.int32)), labels, query


def init_params(key):
  ks = jax.random.split(key, 8)
  u = lambda k, shape, fan: jax.random.uniform(k, shape, jnp.float32, -fan ** -0.5, fan ** -0.5)
  return {
      "query": jax.random.normal(ks[0], (VOCAB, EMB)), "token": jax.random.normal(ks[1], (VOCAB, EMB)),
      "w1": u(ks[2], (3 * EMB, HID), 3 * EMB), "b1": jnp.zeros((HID,)),
      "w2": u(ks[3], (HID, 2), HID), "b2": jnp.zeros((2,)),
      "wi": u(ks[4], (2, 3 * HID), HID), "wh": u(ks[5], (HID, 3 * HID), HID),
      "bi": jnp.zeros((3 * HID,)), "bh": jnp.zeros((3 * HID,)),
      "wo": u(ks[6], (HID,), HID), "bo": jnp.zeros(()),
  }


def encoder_state(params, batch: Batch, words):
  """The per-token 2-d state ``[B, T, 2]`` from token embeddings and the query."""
  code = batch.token_type_ids[:, 0]
  q = jnp.concatenate([params["query"][code // VOCAB], params["query"][code % VOCAB]], -1)
  q = jnp.broadcast_to(q[:, None], words.shape[:2] + (2 * EMB,))
  h = jnp.tanh(jnp.concatenate([q, words], -1) @ params["w1"] + params["b1"])
  return h @ params["w2"] + params["b2"]


def head(params, enc, mask):
  """GRU (PyTorch gate order r, z, n) over the real tokens, then the linear head: ``s [B]``."""
  def cell(h, xs):
    x, m = xs
    gi, gh = x @ params["wi"] + params["bi"], h @ params["wh"] + params["bh"]
    r = jax.nn.sigmoid(gi[:, :HID] + gh[:, :HID])
    z = jax.nn.sigmoid(gi[:, HID:2 * HID] + gh[:, HID:2 * HID])
    n = jnp.tanh(gi[:, 2 * HID:] + r * gh[:, 2 * HID:])
    new = (1 - z) * n + z * h
    return jnp.where(m[:, None] > 0, new, h), None
  h0 = jnp.zeros((enc.shape[0], HID), enc.dtype)
  h, _ = jax.lax.scan(cell, h0, (jnp.swapaxes(enc, 0, 1), jnp.swapaxes(mask, 0, 1)))
  return h @ params["wo"] + params["bo"]


def forward(params, batch: Batch, taps: Taps = Taps()) -> Outputs:
  """The toy model under jaxplain's contract (see the module docstring)."""
  words = params["token"][batch.input_ids] if taps.word_embeddings is None else taps.word_embeddings
  enc = encoder_state(params, batch, words) if taps.hidden is None else taps.hidden
  if taps.hidden_delta is not None:
    enc = enc + taps.hidden_delta[0]
  s = head(params, enc, batch.attention_mask)
  b, t = batch.input_ids.shape
  return Outputs(logits=jnp.stack([jnp.zeros_like(s), s], -1), hidden=enc[None],
                 attention=jnp.zeros((0, b, 1, t, t)), word_embeddings=words)


def train_model(batch: Batch, labels, *, epochs=50, batch_size=128, lr=1e-3, seed=0,
                entropy_weight=0.35):
  """Adam, BCE - 0.35 * entropy (authors), ``epochs`` passes; returns params."""
  params = init_params(jax.random.key(seed))
  tx = optax.adam(lr)
  opt = tx.init(params)

  @jax.jit
  def step(params, opt, b, y):
    def loss_fn(p):
      s = forward(p, b).logits[:, 1]
      bce = optax.sigmoid_binary_cross_entropy(s, y.astype(jnp.float32))
      pr = jax.nn.sigmoid(s)
      ent = -(pr * jax.nn.log_sigmoid(s) + (1 - pr) * jax.nn.log_sigmoid(-s))
      return jnp.mean(bce - entropy_weight * ent)
    loss, g = jax.value_and_grad(loss_fn)(params)
    u, opt = tx.update(g, opt, params)
    return optax.apply_updates(params, u), opt, loss

  n = len(labels)
  rng = np.random.default_rng(seed)
  for _ in range(epochs):
    perm = rng.permutation(n)
    for i in range(0, n - batch_size + 1, batch_size):
      idx = perm[i:i + batch_size]
      params, opt, _ = step(params, opt, batch.take(idx), jnp.asarray(labels[idx]))
  return params


def accuracy(params, batch: Batch, labels) -> float:
  s = jax.jit(forward)(params, batch).logits[:, 1]
  return float(np.mean((np.asarray(s) > 0) == (labels > 0)))


def hidden_gradients(params, batch: Batch, scale):
  """``d s / d enc`` at ``scale * enc`` (the authors' IG path at the 2-d state)."""
  enc = forward(params, batch).hidden[0]
  f = lambda e: jnp.sum(forward(params, batch, Taps(hidden=e, hidden_layer=0)).logits[:, 1])
  return jax.grad(f)(scale * enc), enc


def integrated_gradients_hidden(params, batch: Batch, steps: int = 500):
  """Authors' IG at the encoder state: zero baseline, ``linspace(0, 1, steps)``, ``|sum_d|``."""
  alphas = jnp.linspace(0.0, 1.0, steps)
  def body(acc, a):
    g, _ = hidden_gradients(params, batch, a)
    return acc + g, None
  enc = forward(params, batch).hidden[0]
  total, _ = jax.lax.scan(body, jnp.zeros_like(enc), alphas)
  return jnp.abs(jnp.sum(enc * total / steps, -1)) * batch.attention_mask


def gradient_x_input_hidden(params, batch: Batch):
  """``|sum_d h * d s / d h|`` at the encoder state."""
  g, enc = hidden_gradients(params, batch, 1.0)
  return jnp.abs(jnp.sum(enc * g, -1)) * batch.attention_mask


def ground_truth(batch: Batch, query):
  ids = np.asarray(batch.input_ids)
  gt = ((ids == query[:, :1]) | (ids == query[:, 1:])) & (np.asarray(batch.attention_mask) > 0)
  return gt.astype(np.float64)


def divergences(attr, gt):
  """Per-example ``KL(q || p)`` and ``JS(p, q)`` to the ground truth ``q`` (authors' table).

  Examples without any ``m``/``n`` are skipped; ``p`` is ``attr`` normalised over positions.
  """
  keep = gt.sum(-1) > 0
  attr, gt = np.asarray(attr, np.float64)[keep], gt[keep]
  p = attr / np.maximum(attr.sum(-1, keepdims=True), 1e-300)
  q = gt / gt.sum(-1, keepdims=True)
  with np.errstate(divide="ignore", invalid="ignore"):
    kl = lambda a, b: np.where(a > 0, a * (np.log(a) - np.log(b)), 0.0).sum(-1)
    m = 0.5 * (p + q)
    return kl(q, p), 0.5 * kl(p, m) + 0.5 * kl(q, m)
