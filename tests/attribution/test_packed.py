"""``attribute(..., pack=...)``: the same attributions as without packing, and clear refusals.

On the tiny BERT classifier (its own tokenizer): every packable method's scores, targets,
probabilities and IG deltas equal the unpacked call's, with predicted, fixed and per-text
targets, several packed batches (the last one cut to a power of two) and a Batch as input.
The IG baseline keeps each packed example's first and last token even when no special ids are
given (``special_positions`` on packed rows).
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxplain
from jaxplain.attribution import METHODS, PACKABLE
from jaxplain.attribution.gradients import special_positions
from jaxplain.models import pack, unpack

from _tiny_bert import IDS, make_batch, model

TEXTS = ["this is a film", "the plot is thin and the acting is wooden but it works",
         "bad", "a triumph of style over substance with great scenes", "meh", "good fun",
         "not good at all", "i laughed and cried and laughed again at the end of it"]
HYPER = {"integrated_gradients": dict(steps=8)}
TOL = dict(atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("name", PACKABLE)
def test_packed_attributions_equal_unpacked(name):
  hyper = HYPER.get(name, {})
  plain = jaxplain.attribute(model(), TEXTS, name, **hyper)
  packed = jaxplain.attribute(model(), TEXTS, name, pack=True, **hyper)
  np.testing.assert_allclose(packed.scores, plain.scores, **TOL)
  np.testing.assert_array_equal(packed.target, plain.target)
  np.testing.assert_allclose(packed.probabilities, plain.probabilities, atol=1e-6)
  assert packed.tokens == plain.tokens and packed.texts == plain.texts
  if name == "integrated_gradients":
    np.testing.assert_allclose(packed.deltas, plain.deltas, atol=1e-5)
  else:
    assert packed.deltas is None


def test_several_packed_batches_and_given_targets():
  targets = np.arange(len(TEXTS)) % 3
  plain = jaxplain.attribute(model(), TEXTS, "integrated_gradients", target=targets, steps=8)
  # Rows of 16 tokens, two rows per batch: several batches, the last one a power of two.
  packed = jaxplain.attribute(model(), TEXTS, "integrated_gradients", target=targets, steps=8,
                              pack=16, batch_size=2)
  np.testing.assert_allclose(packed.scores, plain.scores, **TOL)
  np.testing.assert_array_equal(packed.target, targets)
  np.testing.assert_allclose(packed.deltas, plain.deltas, atol=1e-5)
  one = jaxplain.attribute(model(), TEXTS, "gradient_x_input", target=2, pack=True)
  np.testing.assert_array_equal(one.target, np.full(len(TEXTS), 2))


def test_packing_a_batch():
  batch = make_batch([[2, 20, 21, 3], [2, 22, 23, 24, 25, 3], [2, 26, 3]])
  plain = jaxplain.attribute(model(), batch, "saliency")
  packed = jaxplain.attribute(model(), batch, "saliency", pack=16)
  np.testing.assert_allclose(packed.scores, plain.scores, **TOL)
  with pytest.raises(jaxplain.InputError, match="already packed; pass the unpacked batch"):
    jaxplain.attribute(model(), pack(batch, 16, 4)[0][0], "saliency")


@pytest.mark.parametrize("name,hyper", [("gradient_x_input", {}),
                                        ("integrated_gradients", dict(steps=4, **IDS))])
def test_kernels_find_each_slots_predicted_class(name, hyper):
  """Called directly with ``target=None``: gradient x input through its one-pass ``jax.vjp``,
  IG through ``resolve_target``; both explain each packed example's own predicted class."""
  batch = make_batch([[2, 20, 21, 3], [2, 22, 23, 24, 25, 3], [2, 26, 3], [2, 27, 28, 3]])
  parts, layout = pack(batch, 16, 2)
  m = model()
  fn = jax.jit(lambda params, b: METHODS[name](m.forward, params, b, None, **hyper))
  plain = np.asarray(fn(m.params, batch))
  packed = unpack([np.asarray(fn(m.params, jax.tree.map(jnp.asarray, p))) for p in parts], layout)
  np.testing.assert_allclose(packed, plain, **TOL)


def test_baseline_keeps_each_packed_examples_ends_without_special_ids():
  batch = make_batch([[2, 20, 21, 3], [2, 22, 23, 24, 25, 3], [2, 26, 3]])
  parts, layout = pack(batch, 16, 4)
  special = np.asarray(special_positions(jax.tree.map(jnp.asarray, parts[0])))
  alone = np.asarray(special_positions(batch))
  np.testing.assert_array_equal(unpack([special], layout), alone)


@pytest.mark.parametrize("kwargs,match", [
    (dict(method="smoothgrad"), "does not take packed batches; pack works with"),
    (dict(target=lambda out: out.logits[:, 0]), "not a callable"),
    (dict(method="integrated_gradients", baseline=np.zeros((4, 32), np.float32)),
     r"per-token arrays \(baseline\)"),
    (dict(pack=0), "pack must be True, False or a row length"),
    (dict(pack="yes"), "pack must be True, False or a row length"),
    (dict(pack=4), "more than the packed row length 4"),
])
def test_packing_refusals(kwargs, match):
  kwargs = dict(dict(method="gradient_x_input", pack=True), **kwargs)
  with pytest.raises(jaxplain.InputError, match=match):
    jaxplain.attribute(model(), TEXTS, **kwargs)


def test_packing_needs_one_output_per_text():
  qa = jaxplain.load_model(os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures",
                                        "tiny", "bert_qa"))
  with pytest.raises(jaxplain.InputError, match="'question_answering'. Drop pack"):
    jaxplain.attribute(qa, ["a question"], "gradient", target=0, pack=True)
