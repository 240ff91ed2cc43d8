"""The sweep's compiled step gives the scores of the library's own kernels.

The step reads ``gradient``, ``saliency`` (both norms) and ``gradient_x_input`` off one shared
embedding gradient, and runs every other method's kernel with the predicted class fixed. Here its
outputs are compared, in process on the tiny BERT, with the registered kernels called directly.
"""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxplain
from jaxplain.attribution import METHODS, scores_from_gradient
from jaxplain.corpus import SHARED_GRADIENT, sweep_step
from jaxplain.errors import InputError

TINY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures",
                    "tiny", "bert_seq_cls")
IG = (("pad_id", 0), ("steps", 4), ("unk_id", 1), ("mask_id", 4), ("special_ids", (2, 3)))
L2_PLAN = (("gradient", ()), ("saliency", ()), ("gradient_x_input", ()),
           ("integrated_gradients", tuple(sorted(IG))))
L1_PLAN = (("saliency", (("norm", "l1"),)), ("gradient_x_input", ()))
"""Two sweep plans (a plan names each method once): saliency's two norms, each beside others
that share its gradient, and a method with its own kernel."""
ROWS = [[2, 5, 30, 15, 38, 65, 3], [2, 6, 39, 31, 66, 9, 5, 33, 16, 40, 65, 3], [2, 39, 3]]


@functools.cache
def _model() -> jaxplain.Model:
  return jaxplain.load_model(TINY)


def _batch() -> jaxplain.Batch:
  ids = np.zeros((len(ROWS), 16), np.int32)
  for i, r in enumerate(ROWS):
    ids[i, :len(r)] = r
  ids = jnp.asarray(ids)
  return jaxplain.Batch(ids, (ids != 0).astype(jnp.int32), jnp.zeros_like(ids))


@pytest.mark.parametrize("plan,which", [(L2_PLAN, i) for i in range(len(L2_PLAN))]
                         + [(L1_PLAN, i) for i in range(len(L1_PLAN))])
def test_step_scores_equal_the_kernels(plan, which):
  model, batch = _model(), _batch()
  name, hyper = plan[which]
  step = sweep_step(model.forward, plan, ())  # cached: one compile per plan
  n = batch.input_ids.shape[0]
  out = step(model.params, batch, jnp.full_like(batch.input_ids, -1), jnp.full((n,), -1),
             jnp.arange(n), jax.random.key(0))
  target = out["target"]
  assert bool(jnp.all(target == jnp.argmax(model.forward(model.params, batch).logits, -1)))
  kernel = jax.jit(functools.partial(METHODS[name], model.forward, **dict(hyper)))
  want = np.asarray(kernel(model.params, batch, target))
  got = np.asarray(out[f"scores.{name}"])
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())
  assert np.all(got[np.asarray(batch.attention_mask) == 0] == 0)  # padding gets nothing


def test_scores_from_gradient_names_its_methods():
  g = jnp.asarray([[[3.0, -4.0]]])
  x = jnp.asarray([[[2.0, 1.0]]])
  assert float(scores_from_gradient("gradient", g, x)[0, 0]) == -1.0
  assert float(scores_from_gradient("saliency", g, x)[0, 0]) == 5.0
  assert float(scores_from_gradient("saliency", g, x, norm="l1")[0, 0]) == 7.0
  assert float(scores_from_gradient("gradient_x_input", g, x)[0, 0]) == 2.0
  assert set(SHARED_GRADIENT) == {"gradient", "saliency", "gradient_x_input"}
  with pytest.raises(InputError, match="'l2' or 'l1'"):
    scores_from_gradient("saliency", g, x, norm="l3")
  with pytest.raises(InputError, match="not read off the embedding gradient"):
    scores_from_gradient("integrated_gradients", g, x)
