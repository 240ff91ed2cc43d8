"""All-layer kernels: one backward pass equals per-layer gradients; layer IG's two paths."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxplain
from _tiny_bert import IDS, ROWS, call, make_batch, model
from jaxplain.attribution.layers import hidden_grads
from jaxplain.errors import InputError

_IDS = tuple(sorted(IDS.items()))
SAME = 2e-5         # one float32 computation regrouped by XLA
COMPLETENESS = 0.01  # Captum-exact layer IG: each row sums to f(x) - f(x'), 32 Gauss-Legendre steps
BATCH = make_batch(ROWS)


def test_one_backward_pass_equals_per_layer_gradients():
  forward, params = model().forward, model().params
  target = jnp.asarray([0, 1, 2, 0])

  @jax.jit
  def both(params, batch):
    grads, hidden = hidden_grads(forward, params, batch, target)
    per_layer = []
    for layer in range(hidden.shape[0]):
      f = lambda h, layer=layer: jnp.take_along_axis(
          forward(params, batch, jaxplain.Taps(hidden=h, hidden_layer=layer)).logits,
          target[:, None], 1).sum()
      per_layer.append(jax.grad(f)(hidden[layer]))
    return grads, jnp.stack(per_layer)

  grads, per_layer = both(params, BATCH)
  np.testing.assert_allclose(np.asarray(grads), np.asarray(per_layer), atol=1e-6)


def test_layer_gradient_x_activation_rows():
  rows = np.asarray(call("layer_gradient_x_activation", BATCH))
  assert rows.shape == (model().config.num_layers + 1, 4, 16)
  outs = model().outputs(BATCH)
  assert np.all(rows[:, np.asarray(BATCH.attention_mask) == 0] == 0)
  assert np.abs(rows).max() > 0 and np.isfinite(rows).all()
  del outs


def test_layer_path_rows_are_complete_and_inputs_path_chunks():
  exact = np.asarray(call("layer_integrated_gradients", BATCH, hyper=(
      ("path", "layer"), ("steps", 32)) + _IDS))
  ig = np.asarray(call("integrated_gradients", BATCH, hyper=(("steps", 32),) + _IDS))
  gap = ig.sum(-1)  # f(x) - f(x') up to a tiny delta
  for row in exact:
    np.testing.assert_allclose(row.sum(-1), gap, atol=1e-4 + COMPLETENESS * np.abs(gap).max())
  one_pass = np.asarray(call("layer_integrated_gradients", BATCH, hyper=(("steps", 7),) + _IDS))
  chunked = np.asarray(call("layer_integrated_gradients", BATCH,
                            hyper=(("chunk_size", 3), ("steps", 7)) + _IDS))
  np.testing.assert_allclose(chunked, one_pass, atol=SAME)
  assert one_pass.shape == exact.shape


def test_attribute_returns_every_layer():
  a = jaxplain.attribute(model(), ["the movies were boring", "a very funny film"],
                         "layer_gradient_x_activation")
  assert a.extra["layers"].shape[:2] == (model().config.num_layers + 1, 2)
  np.testing.assert_array_equal(a.scores, a.extra["layers"][0])


def test_bad_input():
  with pytest.raises(InputError, match="path"):
    call("layer_integrated_gradients", BATCH, hyper=(("path", "hidden"), ("steps", 2)))
  with pytest.raises(InputError, match="steps"):
    call("layer_integrated_gradients", BATCH, hyper=(("steps", 0),))


def test_attribute_reports_every_layer_igs_convergence_delta():
  texts = ["the movies were boring", "a very funny film", "boring"]
  exact = jaxplain.attribute(model(), texts, "layer_integrated_gradients", path="layer",
                             steps=32, batch_size=2)          # two calls, joined
  ig = jaxplain.attribute(model(), texts, "integrated_gradients", steps=32)
  gap = ig.scores.sum(-1) - ig.deltas                         # f(x) - f(x'), per example
  deltas = exact.extra["layer_deltas"]
  assert deltas.shape == (model().config.num_layers + 1, 3)
  np.testing.assert_allclose(deltas, exact.extra["layers"].sum(-1) - gap[None], atol=1e-5)
  np.testing.assert_array_equal(exact.deltas, deltas[0])
  assert np.abs(deltas).max() <= 1e-4 + COMPLETENESS * np.abs(gap).max()   # the exact path
  one_pass = jaxplain.attribute(model(), texts, "layer_integrated_gradients", steps=32)
  np.testing.assert_allclose(one_pass.extra["layer_deltas"],
                             one_pass.extra["layers"].sum(-1) - gap[None], atol=1e-5)
