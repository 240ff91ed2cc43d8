"""Gradient kernels: quadrature tables, IG completeness, baselines, targets, bad input, words."""

import functools

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxplain
from _tiny_bert import IDS, ROWS, call, make_batch, model
from jaxplain.attribution import canonical_name, ig_convergence_delta
from jaxplain.attribution._quadrature import QUADRATURES, quadrature_table
from jaxplain.errors import InputError

_IDS = tuple(sorted(IDS.items()))
SAME = 2e-5          # one float32 computation regrouped by XLA (chunks, batch size)
COMPLETENESS = 0.01  # |sum IG - (f(x) - f(x'))| at 300 steps, relative to |f(x) - f(x')|


@pytest.mark.parametrize("quadrature", QUADRATURES)
@pytest.mark.parametrize("steps", [2, 7, 50])
def test_quadrature_matches_captum(quadrature, steps):
  alphas, weights = quadrature_table(quadrature, steps)
  assert alphas.shape == weights.shape == (steps,)
  assert np.all((alphas >= 0) & (alphas <= 1))
  np.testing.assert_allclose(weights.sum(), 1.0 - (quadrature == "riemann_trapezoid") / steps,
                             rtol=1e-12)
  methods = pytest.importorskip("captum.attr._utils.approximation_methods")
  step_sizes, alpha_fn = methods.approximation_parameters(quadrature)
  np.testing.assert_allclose(weights, step_sizes(steps), rtol=1e-12)
  np.testing.assert_allclose(alphas, alpha_fn(steps), atol=1e-7)  # Captum's torch.linspace: f32


def _ig(batch, target=None, **hyper):
  return np.asarray(call("integrated_gradients", batch, target,
                         hyper=tuple(sorted({**IDS, **hyper}.items()))))


@functools.cache
def _logit_fn():
  forward = model().forward

  def f(params, batch, emb, target):
    out = forward(params, batch, jaxplain.Taps(word_embeddings=emb))
    return jnp.take_along_axis(out.logits, target[:, None], 1)[:, 0]

  return jax.jit(f)


@functools.cache
def _delta_fn():
  return jax.jit(functools.partial(ig_convergence_delta, model().forward, **IDS))


@hypothesis.settings(max_examples=5, deadline=None, derandomize=True)
@hypothesis.given(st.lists(st.lists(st.integers(5, 99), min_size=1, max_size=12), min_size=2,
                           max_size=2))
def test_completeness_at_300_steps(words):
  batch = make_batch([[2] + w + [3] for w in words])
  target = jnp.asarray([0, 2])
  scores = _ig(batch, target, steps=300)
  delta = np.asarray(_delta_fn()(model().params, batch, target, jnp.asarray(scores)))
  gap = scores.sum(-1) - delta  # = f(x) - f(x')
  assert np.all(np.abs(delta) <= COMPLETENESS * np.abs(gap) + 1e-5), (delta, gap)


def test_chunks_of_any_size_equal_one_vmap():
  batch = make_batch(ROWS)
  full = _ig(batch, steps=8)
  for chunk in (3, 20):  # 3 does not divide 8; 20 is larger than the axis
    np.testing.assert_allclose(_ig(batch, steps=8, chunk_size=chunk), full, atol=SAME)


def test_targets_per_example_predicted_and_callable():
  batch = make_batch(ROWS)
  logits = np.asarray(model().outputs(batch).logits)
  predicted = _ig(batch, None, steps=8)
  np.testing.assert_allclose(predicted, _ig(batch, jnp.asarray(logits.argmax(-1)), steps=8),
                             atol=SAME)
  per_example = _ig(batch, jnp.asarray([0, 1, 2, 1]), steps=8)
  for c in range(3):
    whole = _ig(batch, jnp.asarray([c] * 4), steps=8)
    rows = [i for i, t in enumerate([0, 1, 2, 1]) if t == c]
    np.testing.assert_allclose(per_example[rows], whole[rows], atol=SAME)
  callable_target = lambda out: out.logits[:, 1]
  np.testing.assert_allclose(_ig(batch, callable_target, steps=8),
                             _ig(batch, jnp.asarray([1] * 4), steps=8), atol=SAME)


def test_baselines_keep_special_tokens_and_arrays_broadcast():
  forward = model().forward
  from jaxplain.attribution._common import embed
  from jaxplain.attribution.gradients import baseline_embeddings, special_positions
  batch = make_batch(ROWS, word_ids=True)
  user = jax.random.normal(jax.random.key(1), (16, 32))

  @jax.jit
  def all_baselines(params, batch, user):
    x = embed(forward, params, batch)
    named = {n: baseline_embeddings(forward, params, batch, x, n, **IDS)
             for n in ("pad", "mask", "unk", "zero")}
    tables = embed(forward, params, make_batch([[0, 4, 1]], t=3))[0]
    arrays = (baseline_embeddings(forward, params, batch, x, user),
              baseline_embeddings(forward, params, batch, x, jnp.broadcast_to(user, x.shape)))
    return x, named, tables, arrays

  x, named, tables, arrays = jax.device_get(all_baselines(model().params, batch, user))
  for name, token in (("pad", 0), ("mask", 1), ("unk", 2)):
    x0 = named[name]
    np.testing.assert_array_equal(x0[0, 1:6], np.broadcast_to(tables[token], (5, 32)))
    np.testing.assert_array_equal(x0[:, 0], x[:, 0])                  # [CLS] kept
    np.testing.assert_array_equal(x0[0, 6], x[0, 6])                  # [SEP] kept
    np.testing.assert_array_equal(x0[3, 9], x[3, 9])                  # padding kept
  np.testing.assert_array_equal(named["zero"][0, :7], 0)
  np.testing.assert_array_equal(arrays[0], arrays[1])
  # Without word ids, the [SEP] of a pair is found by its id.
  pair = make_batch([[2, 10, 3, 11, 12, 3]])
  np.testing.assert_array_equal(special_positions(pair, (2, 3))[0, :6],
                                [True, False, True, False, False, True])
  np.testing.assert_array_equal(special_positions(pair)[0, :6],
                                [True, False, False, False, False, True])


def test_attribute_fills_token_ids_and_deltas():
  m = model()
  texts = ["the movies were boring", "a very funny film , really"]
  a = jaxplain.attribute(m, texts, "ig", steps=6, baseline="mask")
  batch = m.encode(texts)
  direct = _ig(batch.device_part(), jnp.asarray(a.target), steps=6, baseline="mask")
  np.testing.assert_allclose(a.scores, direct, atol=SAME)
  assert a.deltas is not None and a.deltas.shape == (2,)
  assert a.hyper == {"steps": 6, "baseline": "mask"}
  # A baseline array must be as wide as the batch attribute pads the texts to: the error says
  # where that width comes from.
  t, e = batch.input_ids.shape[1], m.config.embedding_size or m.config.hidden_size
  with pytest.raises(InputError, match=rf"\(2, {t}, {e}\) \(\[B, T, E\]\).*"
                     r"model\.encode\(texts\)\.input_ids\.shape\[1\]"):
    jaxplain.attribute(m, texts, "ig", steps=6, baseline=np.zeros((t + 1, e), np.float32))


def test_bad_input():
  batch = make_batch(ROWS)
  with pytest.raises(InputError, match="did you mean 'integrated_gradients'\\? valid methods: "
                     ".*integrated_gradients"):
    canonical_name("integrated_gradient")
  assert canonical_name("IG") == "integrated_gradients"
  assert canonical_name("lig") == "layer_integrated_gradients"
  with pytest.raises(InputError, match="baseline has shape"):
    call("integrated_gradients", batch, hyper=(("steps", 3),), baseline=jnp.zeros((3, 5)))
  with pytest.raises(InputError, match="unknown baseline"):
    _ig(batch, steps=3, baseline="blank")
  with pytest.raises(InputError, match="steps >= 1"):
    _ig(batch, steps=0)
  with pytest.raises(InputError, match="steps >= 2"):
    _ig(batch, steps=1, quadrature="riemann_left")
  with pytest.raises(InputError, match="unknown quadrature"):
    _ig(batch, steps=3, quadrature="simpson")
  with pytest.raises(InputError, match="chunk_size"):
    _ig(batch, steps=3, chunk_size=0)
  with pytest.raises(InputError, match="norm"):
    call("saliency", batch, hyper=(("norm", "l3"),))
  b = batch.input_ids.shape[0]
  with pytest.raises(InputError, match=rf"target has shape \({b + 1},\); pass one class per "
                     rf"example \({b}\)"):
    _ig(batch, target=jnp.zeros(b + 1, jnp.int32), steps=3)
  with pytest.raises(InputError, match="has no hyperparameter"):
    jaxplain.attribute(model(), "a film", "ig", n_steps=5)


def test_word_scores_aggregate_pieces():
  m = model()
  a = jaxplain.attribute(m, ["the movies were boring"], "gradient_x_input")
  tokens, token_scores = a.token_scores(0)
  assert tokens == ["[CLS]", "the", "movie", "##s", "were", "boring", "[SEP]"]
  pieces = token_scores[2:4]
  words, s = a.word_scores(0)
  assert words == ["the", "movies", "were", "boring"]
  np.testing.assert_allclose(s, [token_scores[1], pieces.sum(), token_scores[4], token_scores[5]],
                             rtol=1e-6)
  for agg, value in (("mean", pieces.mean()), ("max", pieces.max()),
                     ("abs_sum", np.abs(pieces).sum())):
    np.testing.assert_allclose(a.word_scores(0, agg)[1][1], value, rtol=1e-6)
  kept, ks = a.word_scores(0, special_tokens="keep")
  assert kept == ["[CLS]", "the", "movies", "were", "boring", "[SEP]"]
  np.testing.assert_allclose(ks.sum(), token_scores.sum(), rtol=1e-5)  # "sum" keeps completeness
  with pytest.raises(InputError, match="unknown word aggregation"):
    a.word_scores(0, "median")
  with pytest.raises(InputError, match="special_tokens"):
    a.word_scores(0, special_tokens="merge")


@pytest.mark.parametrize("name", ["gradient", "saliency", "gradient_x_input"])
def test_predicted_target_from_the_same_pass_equals_an_explicit_target(name):
  """target=None reads the prediction off the vjp's primal: same scores as passing it."""
  from jaxplain.attribution import METHODS  # pylint: disable=g-import-not-at-top
  batch = make_batch(ROWS)
  m = model()
  predicted = jnp.asarray(np.asarray(m.outputs(batch).logits).argmax(-1))
  kernel = jax.jit(functools.partial(METHODS[name], m.forward))
  np.testing.assert_allclose(kernel(m.params, batch, None), kernel(m.params, batch, predicted),
                             atol=SAME)


def test_question_answering_start_logit_as_a_callable_target():
  from jaxplain.attribution import gradient_x_input, integrated_gradients  # pylint: disable=g-import-not-at-top
  from jaxplain.models import EncoderConfig, init_encoder  # pylint: disable=g-import-not-at-top
  config = EncoderConfig(family="bert", hidden_size=32, num_layers=2, num_heads=4,
                         intermediate_size=37, vocab_size=100, max_positions=40,
                         head="question_answering")
  forward, params = init_encoder(config, seed=3)
  batch = make_batch(ROWS)
  starts = jnp.asarray([4, 7, 1, 3])                      # an answer start inside each example
  start_logit = lambda out: out.logits[jnp.arange(4), starts, 0]   # logits [B, T, 2]
  # A callable target is closed over (a jit argument must be an array).
  ig = jax.jit(functools.partial(integrated_gradients, forward, target=start_logit, steps=300,
                                 **IDS))
  scores = np.asarray(ig(params, batch))
  delta = np.asarray(ig_convergence_delta(forward, params, batch, start_logit,
                                          jnp.asarray(scores), **IDS))
  assert np.all(np.abs(delta) <= COMPLETENESS * np.abs(scores.sum(-1) - delta) + 1e-6)
  assert np.all(scores[np.asarray(batch.attention_mask) == 0] == 0)
  # An integer target indexes the logits flattened per example, [T, 2] -> [2T]: start of t is 2t.
  by_callable = jax.jit(functools.partial(gradient_x_input, forward, target=start_logit))
  by_index = jax.jit(functools.partial(gradient_x_input, forward))
  np.testing.assert_allclose(np.asarray(by_callable(params, batch)),
                             np.asarray(by_index(params, batch, 2 * starts)), atol=SAME)
