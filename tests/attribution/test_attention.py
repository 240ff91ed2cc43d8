"""Attention family: each kernel against its definition in NumPy, padding, masked == dropped."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxplain.attribution import METHODS, attention, lrp
from jaxplain.attribution._common import target_logit
from jaxplain.contracts import Batch, Taps
from jaxplain.models import EncoderConfig, init_encoder

TINY = EncoderConfig(family="bert", hidden_size=32, num_layers=2, num_heads=4,
                     intermediate_size=64, vocab_size=100, max_positions=64, num_labels=2)
KERNELS = ("raw_attention", "rollout", "attention_gradient", "att_gradcam",
           "attention_x_gradient", "partial_lrp", "attcat")
RTOL = 1e-4  # f32 kernels vs float64 NumPy on the same attention / gradients


def _batch():
  ids = np.random.RandomState(1).randint(3, 100, (3, 9)).astype(np.int32)
  mask = np.ones_like(ids)
  mask[2, 6:] = 0
  return Batch(jnp.asarray(ids), jnp.asarray(mask), jnp.zeros_like(jnp.asarray(ids)))


@pytest.fixture(scope="module")
def setup():
  forward, params = init_encoder(TINY, seed=2)
  batch = _batch()
  # one compiled program for all kernels and for the reference ingredients (compile once)
  @jax.jit
  def run(params, batch):
    scores = {name: METHODS[name](forward, params, batch, 1) for name in KERNELS}
    out = forward(params, batch, Taps())
    ga = jax.grad(lambda d: target_logit(forward(params, batch, Taps(attention_delta=d)),
                                         jnp.ones(3, jnp.int32)).sum())(jnp.zeros_like(
                                             out.attention))
    gh = jax.grad(lambda d: target_logit(forward(params, batch, Taps(hidden_delta=d)),
                                         jnp.ones(3, jnp.int32)).sum())(jnp.zeros_like(out.hidden))
    r_att = lrp.chefer_relevance(forward, params, batch, 1)[0]
    return scores, out.attention, out.hidden, ga, gh, r_att
  got = jax.tree.map(lambda x: np.asarray(x, np.float64), run(params, batch))
  return forward, params, batch, got, run


def _rownorm(m):
  m = m + np.eye(m.shape[-1])
  return m / m.sum(-1, keepdims=True)


def test_against_definitions(setup):
  _, _, batch, (scores, a, h, ga, gh, r_att), _ = setup
  mask = np.asarray(batch.attention_mask)
  for b in range(3):
    n = int(mask[b].sum())
    ab, gab = a[:, b, :, :n, :n], ga[:, b, :, :n, :n]          # [L, N, n, n]
    want = {}
    want["raw_attention"] = ab[-1].mean(0)[0]
    joint = _rownorm(ab[0].mean(0))
    for layer in range(1, ab.shape[0]):
      joint = _rownorm(ab[layer].mean(0)) @ joint
    want["rollout"] = joint[0]
    want["attention_gradient"] = np.maximum(gab[-1].mean((0, 1)), 0)
    cam = np.maximum((ab[-1] * gab[-1].mean((1, 2), keepdims=True)).mean(0), 0)
    spread = cam.max() - cam.min()  # all-zero after the ReLU: scores are 0, not NaN
    want["att_gradcam"] = ((cam - cam.min()) / spread if spread > 0 else cam * 0)[0]
    r = np.eye(n)
    for layer in range(ab.shape[0]):
      r = r + np.maximum(gab[layer] * ab[layer], 0).mean(0) @ r
    want["attention_x_gradient"] = r[0]
    want["partial_lrp"] = np.maximum(r_att[-1, b, :, :n, :n], 0).mean(0)[0]
    cat = (gh[:-1, b, :n] * h[:-1, b, :n]).sum(-1)                     # [L, n]
    want["attcat"] = (cat * ab.mean((1, 2))).sum(0)
    for name in KERNELS:
      w = want[name].copy()
      if name != "attcat":
        w[0] = 0.0  # cls_self="zero", as the Mask-LRP evaluation code
      np.testing.assert_allclose(scores[name][b, :n], w, rtol=RTOL, atol=RTOL * np.abs(w).max(),
                                 err_msg=name)
      assert np.all(scores[name][b, n:] == 0), name


def test_padding_never_matters(setup):
  """Masked == dropped at one compiled shape: other ids under the padding give the same scores."""
  _, params, batch, (scores, *_), run = setup
  ids = np.asarray(batch.input_ids).copy()
  ids[2, 6:] = [97, 98, 99]
  other = Batch(jnp.asarray(ids), batch.attention_mask, batch.token_type_ids)
  again = run(params, other)[0]
  for name in KERNELS:
    np.testing.assert_allclose(scores[name][2], again[name][2], rtol=1e-5,
                               atol=1e-5 * np.abs(scores[name][2]).max(), err_msg=name)
