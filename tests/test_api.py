"""attribute(), methods() and Attribution on the real MiniLM (encoder head) and a tiny model."""

import jax
import numpy as np
import pytest

import jaxplain
from jaxplain.models import EncoderConfig, init_encoder, model_from_params

TINY = EncoderConfig(family="bert", hidden_size=32, num_layers=2, num_heads=4,
                     intermediate_size=64, vocab_size=100, max_positions=64, num_labels=3)


@pytest.fixture(scope="module")
def tiny_model():
  forward, params = init_encoder(TINY, seed=1)
  model = model_from_params(TINY, params, labels=("a", "b", "c"))
  return model


def _batch(ids_rows, t=16):
  ids = np.zeros((len(ids_rows), t), np.int32)
  mask = np.zeros_like(ids)
  for i, row in enumerate(ids_rows):
    ids[i, :len(row)] = row
    mask[i, :len(row)] = 1
  wid = np.where(mask > 0, np.arange(t)[None] - 1, -1).astype(np.int32)
  for i, row in enumerate(ids_rows):
    wid[i, 0] = -1
    wid[i, len(row) - 1] = -1
  return jaxplain.Batch(ids, mask, np.zeros_like(ids), word_ids=wid)


def test_methods_lists_gradient_x_input():
  assert "gradient_x_input" in jaxplain.methods()


def test_unknown_method_lists_valid_names(tiny_model):
  with pytest.raises(jaxplain.InputError, match="valid methods: .*gradient_x_input"):
    jaxplain.attribute(tiny_model, _batch([[2, 5, 6, 3]]), "no_such_method")


def test_unknown_hyperparameter_is_named(tiny_model):
  with pytest.raises(jaxplain.InputError, match="no hyperparameter 'stepz'"):
    jaxplain.attribute(tiny_model, _batch([[2, 5, 6, 3]]), "gradient_x_input", stepz=3)


def test_target_out_of_range(tiny_model):
  with pytest.raises(jaxplain.InputError, match="out of range for 3 classes"):
    jaxplain.attribute(tiny_model, _batch([[2, 5, 6, 3]]), "gradient", target=3)


def test_scores_zero_on_padding_and_predicted_target(tiny_model):
  batch = _batch([[2, 5, 6, 7, 3], [2, 9, 3]])
  a = jaxplain.attribute(tiny_model, batch, "gradient_x_input")
  assert a.scores.shape == (2, 16) and a.scores.dtype == np.float32
  assert np.all(a.scores[batch.attention_mask == 0] == 0)
  np.testing.assert_array_equal(a.target, a.probabilities.argmax(-1))


def test_gradient_x_input_matches_autodiff(tiny_model):
  batch = _batch([[2, 5, 6, 7, 3]])
  forward, params = tiny_model.forward, tiny_model.params
  a = jaxplain.attribute(tiny_model, batch, "gradient_x_input", target=1)

  @jax.jit  # op by op, the reference compiled each of the model's operations on its own
  def reference(params):
    emb = forward(params, batch, jaxplain.Taps()).word_embeddings

    def f(e):
      return forward(params, batch, jaxplain.Taps(word_embeddings=e)).logits[0, 1]

    return (jax.grad(f)(emb) * emb).sum(-1)

  expected = np.asarray(reference(params))
  np.testing.assert_allclose(a.scores, expected * batch.attention_mask, atol=1e-6)


def test_ig_gap_is_one_compiled_program(tiny_model, monkeypatch):
  """The unpacked path's convergence gap runs jitted (its two forward passes op by op compiled
  each operation of the model on a first call): in the method's own program for a class target,
  in one of its own for a callable target, with the value of the kernel run eagerly."""
  from jaxplain import api  # pylint: disable=g-import-not-at-top
  from jaxplain.attribution import CONVERGENCE_DELTAS  # pylint: disable=g-import-not-at-top
  real, traced = CONVERGENCE_DELTAS["integrated_gradients"], []

  def spy(*args, **kwargs):
    traced.append(isinstance(args[4], jax.core.Tracer))  # scores [B, T]
    return real(*args, **kwargs)

  monkeypatch.setitem(CONVERGENCE_DELTAS, "integrated_gradients", spy)
  api._compiled_callable.cache_clear()  # pylint: disable=protected-access
  api._compiled_fused.cache_clear()  # pylint: disable=protected-access
  batch = _batch([[2, 5, 6, 7, 3], [2, 9, 3]])
  by_class = jaxplain.attribute(tiny_model, batch, "ig", target=1, steps=4)
  by_fn = jaxplain.attribute(tiny_model, batch, "ig", target=lambda out: out.logits[:, 1],
                             steps=4)
  api._compiled_callable.cache_clear()  # pylint: disable=protected-access
  api._compiled_fused.cache_clear()  # pylint: disable=protected-access
  assert traced == [True, True]
  eager = real(tiny_model.forward, tiny_model.params, batch, np.array([1, 1]),
               by_class.scores)
  np.testing.assert_allclose(by_class.deltas, eager, atol=1e-6)
  np.testing.assert_allclose(by_fn.deltas, eager, atol=1e-6)


def test_callable_target(tiny_model):
  batch = _batch([[2, 5, 6, 3]])
  a = jaxplain.attribute(tiny_model, batch, "gradient", target=lambda out: out.logits[:, 2])
  b = jaxplain.attribute(tiny_model, batch, "gradient", target=2)
  np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)


def test_callable_target_of_the_wrong_shape_is_named(tiny_model):
  batch = _batch([[2, 5, 6, 3]])
  with pytest.raises(jaxplain.InputError, match=r"shape \[B\]; given logits of shape \(1, 3\) "
                     r"it returned shape \(1, 3\)"):
    jaxplain.attribute(tiny_model, batch, "gradient", target=lambda out: out.logits)


def test_model_and_key_are_checked_and_an_int_key_seeds(tiny_model):
  batch = _batch([[2, 5, 6, 3]])
  with pytest.raises(jaxplain.InputError, match="model must be a jaxplain.Model, got str"):
    jaxplain.attribute("default", batch, "gradient")
  with pytest.raises(jaxplain.InputError, match="key must be one jax.random.key"):
    jaxplain.attribute(tiny_model, batch, "smoothgrad", key=jax.random.split(jax.random.key(0)))
  with pytest.raises(jaxplain.InputError, match="seed must be an int"):
    jaxplain.attribute(tiny_model, batch, "smoothgrad", seed=0.5)
  runs = [jaxplain.attribute(tiny_model, batch, "smoothgrad", samples=2, **kw).scores
          for kw in ({"key": 3}, {"seed": 3}, {"key": jax.random.PRNGKey(3)},
                     {"key": jax.random.key(3)})]
  for r in runs[1:]:
    np.testing.assert_array_equal(r, runs[0])


def test_example_index_out_of_range_is_named(tiny_model):
  a = jaxplain.attribute(tiny_model, _batch([[2, 5, 6, 3], [2, 7, 3]]), "gradient")
  for read in (a.token_scores, a.word_scores):
    with pytest.raises(jaxplain.InputError, match="example 2 is out of range: .* 2 examples"):
      read(2)
  np.testing.assert_array_equal(a.token_scores(-1)[1], a.token_scores(1)[1])
  with pytest.raises(jaxplain.InputError, match="holds 2 examples; pass positions 0..1"):
    a.take([0, 5])
  one = a.take(1)
  assert len(one) == 1 and one.scores.shape == (1, 16)
  np.testing.assert_array_equal(one.scores[0], a.scores[1])


def test_label_name_target(tiny_model):
  batch = _batch([[2, 5, 6, 3], [2, 7, 3]])
  by_name = jaxplain.attribute(tiny_model, batch, "gradient", target=["C", "a"])
  by_index = jaxplain.attribute(tiny_model, batch, "gradient", target=[2, 0])
  np.testing.assert_array_equal(by_name.target, [2, 0])
  np.testing.assert_array_equal(by_name.scores, by_index.scores)
  df = by_name.to_pandas()
  assert df.groupby("example").target_label.first().tolist() == ["c", "a"]


def test_word_aggregation_on_real_tokenizer(minilm):
  a = jaxplain.attribute(minilm, ["unbelievably charming"], "gradient_x_input", target=0)
  tokens, scores = a.token_scores(0)
  words, wscores = a.word_scores(0)
  assert words == ["unbelievably", "charming"]
  assert len(tokens) > len(words) + 2  # word pieces + [CLS]/[SEP]
  np.testing.assert_allclose(wscores.sum(), scores[1:-1].sum(), rtol=1e-5)
  _, maxes = a.word_scores(0, "max")
  _, abs_sums = a.word_scores(0, "abs_sum")
  assert np.all(abs_sums >= np.abs(wscores) - 1e-7) and np.all(maxes <= abs_sums + 1e-7)
  kept, _ = a.word_scores(0, special_tokens="keep")
  assert kept[0] == "[CLS]" and kept[-1] == "[SEP]"
  with pytest.raises(jaxplain.InputError, match="unknown word aggregation"):
    a.word_scores(0, "median")


def test_batch_size_chunks_equal_one_call(minilm):
  texts = ["a fine film", "a long and winding road of a plot that never ends", "meh"]
  whole = jaxplain.attribute(minilm, texts, "gradient", target=1)
  parts = jaxplain.attribute(minilm, texts, "gradient", target=1, batch_size=2)
  for i in range(3):
    np.testing.assert_allclose(parts.token_scores(i)[1], whole.token_scores(i)[1], atol=1e-5)
  df = parts.to_pandas("sum")
  assert set(df.example) == {0, 1, 2} and "word" in df.columns
  # The base MiniLM is an embedding model: its target is an output index, not a named class.
  assert (df.target == 1).all() and "target_label" not in df.columns
  back = whole.take([2, 0])
  assert back.texts == [texts[2], texts[0]] and back.tokens == [whole.tokens[2], whole.tokens[0]]
  np.testing.assert_array_equal(back.scores, whole.scores[[2, 0]])
  np.testing.assert_array_equal(back.target, whole.target[[2, 0]])
