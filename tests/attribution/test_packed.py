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
HYPER = {"integrated_gradients": dict(steps=8), "smoothgrad": dict(samples=2),
         "smoothgrad_sq": dict(samples=2, base="gradient_x_input"),
         "vargrad": dict(samples=2, base="integrated_gradients", steps=4),
         "layer_integrated_gradients": dict(steps=4)}
# Each packable method with its HYPER, and variants that lay out differently.
CASES = [(name, HYPER.get(name, {})) for name in PACKABLE] + [
    ("layer_integrated_gradients", dict(steps=4, path="layer")),  # L+1 runs from each layer
    ("attnlrp", dict(include="all")),  # position relevance: each packed text's own positions
  ("raw_attention", dict(cls_self="min")),  # each example's own minimum at its [CLS]
  ("attention_x_gradient", dict(cls_self="keep")),
  # Chefer's relprop: [SEP] dropped from each packed example's keys, its own minimum at [CLS]
  ("gae", dict(cls_self="min", mask_sep_key=True, start_layer=1)),
  ("mask_lrp", dict(head_mask=np.array([[1.0, 0, 1, 0], [0, 1, 1, 0]]), cls_self="keep")),
  ("full_lrp", dict(mask_sep_key=True)),
]
TOL = dict(atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("name,hyper", CASES)
def test_packed_attributions_equal_unpacked(name, hyper):
  plain = jaxplain.attribute(model(), TEXTS, name, pack=False, **hyper)
  packed = jaxplain.attribute(model(), TEXTS, name, pack=True, **hyper)
  np.testing.assert_allclose(packed.scores, plain.scores, **TOL)
  np.testing.assert_array_equal(packed.target, plain.target)
  np.testing.assert_allclose(packed.probabilities, plain.probabilities, atol=1e-6)
  assert packed.tokens == plain.tokens and packed.texts == plain.texts
  assert set(packed.extra) == set(plain.extra)
  for k, v in plain.extra.items():  # per-layer methods: every row [L+1, B, T] and its gap
    np.testing.assert_allclose(packed.extra[k], v, **TOL)
  if name in ("integrated_gradients", "layer_integrated_gradients"):
    np.testing.assert_allclose(packed.deltas, plain.deltas, atol=1e-5)
    assert name == "integrated_gradients" or set(plain.extra) == {"layers", "layer_deltas"}
  else:
    assert packed.deltas is None


def test_several_packed_batches_and_given_targets():
  targets = np.arange(len(TEXTS)) % 3
  plain = jaxplain.attribute(model(), TEXTS, "integrated_gradients", target=targets, steps=8,
                             pack=False)
  # Rows of 16 tokens, two rows per batch: several batches, the last one a power of two.
  packed = jaxplain.attribute(model(), TEXTS, "integrated_gradients", target=targets, steps=8,
                              pack=16, batch_size=2)
  np.testing.assert_allclose(packed.scores, plain.scores, **TOL)
  np.testing.assert_array_equal(packed.target, targets)
  np.testing.assert_allclose(packed.deltas, plain.deltas, atol=1e-5)
  one = jaxplain.attribute(model(), TEXTS, "gradient_x_input", target=2, pack=True)
  np.testing.assert_array_equal(one.target, np.full(len(TEXTS), 2))


@pytest.mark.parametrize("family", ["roberta", "distilbert"])
@pytest.mark.parametrize("name,hyper", [("layer_integrated_gradients", dict(steps=4)),
                                        ("attnlrp", dict(include="all")), ("mask_lrp", {}),
                                        ("full_lrp", {})])
def test_other_families_pack_too(family, name, hyper):
  """RoBERTa (pad id 1, positions after it) and DistilBERT (no token types): every layer's rows,
  layer IG's gaps, the position share of AttnLRP's relevance, and Chefer's relprop (its
  residual rule rescales each example on its own) match the unpacked call."""
  m = jaxplain.load_model(os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures",
                                       "tiny", f"{family}_seq_cls"))
  texts = [t for t in TEXTS if len(t.split()) < 8]  # the tiny RoBERTa takes 38 tokens
  plain = jaxplain.attribute(m, texts, name, pack=False, **hyper)
  packed = jaxplain.attribute(m, texts, name, pack=True, **hyper)
  # Full LRP's divisions amplify float noise: on the tiny RoBERTa a text alone and in an
  # unpacked batch differ by up to 1e-4 (of 0.85) too.
  tol = dict(atol=3e-4, rtol=1e-4) if name == "full_lrp" else TOL
  np.testing.assert_allclose(packed.extra.get("layers", packed.scores),
                             plain.extra.get("layers", plain.scores), **tol)
  np.testing.assert_array_equal(packed.target, plain.target)
  if plain.deltas is not None:
    np.testing.assert_allclose(packed.deltas, plain.deltas, atol=1e-5)


@pytest.mark.parametrize("name,hyper", [("attention_gradient", {}),
                                        ("attention_gradient", dict(cls_self="keep")),
                                        ("att_gradcam", dict(cls_self="min")),
                                        ("rollout", dict(cls_self="min"))])
def test_attention_methods_pack_on_the_real_model(minilm, name, hyper):
  """Where the tiny BERT's scores are all 0 (its attention gradients are negative): each token
  reads its own example's [CLS] row, and row means, head weights and min-max stay inside its
  example's block of the attention maps."""
  plain = jaxplain.attribute(minilm, TEXTS, name, pack=False, **hyper)
  packed = jaxplain.attribute(minilm, TEXTS, name, pack=True, **hyper)
  assert np.abs(plain.scores).max() > 1e-3
  np.testing.assert_allclose(packed.scores, plain.scores, **TOL)
  np.testing.assert_array_equal(packed.target, plain.target)


def test_packing_a_batch():
  batch = make_batch([[2, 20, 21, 3], [2, 22, 23, 24, 25, 3], [2, 26, 3]])
  plain = jaxplain.attribute(model(), batch, "saliency")
  packed = jaxplain.attribute(model(), batch, "saliency", pack=16)
  np.testing.assert_allclose(packed.scores, plain.scores, **TOL)
  with pytest.raises(jaxplain.InputError, match="already packed; pass the unpacked batch"):
    jaxplain.attribute(model(), pack(batch, 16, 4)[0][0], "saliency")


@pytest.mark.parametrize("name,hyper", [("gradient_x_input", {}),
                                        ("layer_gradient_x_activation", {}), ("cp_lrp", {}),
                                        ("integrated_gradients", dict(steps=4, **IDS))])
def test_kernels_find_each_slots_predicted_class(name, hyper):
  """Called directly with ``target=None``: the one-pass methods through their own ``jax.vjp``,
  IG through ``resolve_target``; all explain each packed example's own predicted class."""
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
    (dict(method="decoded_layer_saliency"), "does not take packed batches; pack works with"),
    (dict(target=lambda out: out.logits[:, 0]), "not a callable"),
    (dict(method="integrated_gradients", baseline=np.zeros((4, 32), np.float32)),
     r"per-text arrays \(baseline\)"),
    (dict(pack=0), "pack must be True, False, 'auto' or a row length"),
    (dict(pack="yes"), "pack must be True, False, 'auto' or a row length"),
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


def _spy(monkeypatch, name):
  """Records the batch shapes that ``jaxplain.api.<name>`` is called with."""
  import jaxplain.api as api  # pylint: disable=g-import-not-at-top
  real, shapes = getattr(api, name), []

  def spy(*args, **kwargs):
    batch = next(a for a in args if isinstance(a, jaxplain.Batch))
    shapes.append(tuple(np.shape(batch.input_ids)))
    return real(*args, **kwargs)

  monkeypatch.setattr(api, name, spy)
  return shapes


@pytest.mark.parametrize("kwargs,packs", [
    (dict(), True),
    (dict(method="integrated_gradients", steps=8, target=1), True),
    (dict(method="smoothgrad", samples=2), True),
    (dict(method="layer_gradient_x_activation"), True),      # all layers' rows unpacked
    (dict(method="rollout"), True),                           # [CLS] rows read per example
    (dict(method="gae"), True),                               # Chefer relprop, per example
    (dict(method="decoded_layer_saliency"), False),           # not packable: length groups
    (dict(target=lambda out: out.logits[:, 0]), False),      # a callable target
    (dict(batch_size=4), False),                              # texts per call asked for
    (dict(texts=TEXTS[:1]), False),                           # one text: nothing to pack
    (dict(pack=False), False),
])
def test_auto_packs_when_it_can(monkeypatch, kwargs, packs):
  packed = _spy(monkeypatch, "pack_batch")
  kwargs = dict(dict(texts=TEXTS, method="gradient_x_input"), **kwargs)
  a = jaxplain.attribute(model(), kwargs.pop("texts"), **kwargs)
  assert bool(packed) == packs and a.texts == TEXTS[:len(a)]


@pytest.mark.parametrize("name", ["gradient_x_input", "layer_gradient_x_activation"])
def test_length_groups_equal_one_call_in_the_texts_order(monkeypatch, name):
  """Without packing, texts run in length-sorted calls of a token-row budget (here 48 rows:
  several calls, some filled with repeats), each padded to its own bucket; the result is the
  one-call result, in the texts' order, layers and per-text targets included."""
  import jaxplain.api as api  # pylint: disable=g-import-not-at-top
  texts = TEXTS + ["and a longer one that runs on past sixteen word pieces with some more words"]
  targets = np.arange(len(texts)) % 3
  whole = jaxplain.attribute(model(), texts, name, target=targets, batch_size=len(texts))
  shapes = _spy(monkeypatch, "_attribute_batch")
  monkeypatch.setattr(api, "auto_token_rows", lambda: 48)
  grouped = jaxplain.attribute(model(), texts, name, target=targets, pack=False)
  assert len(shapes) > 1 and len({t for _, t in shapes}) > 1
  assert max(t for _, t in shapes) == whole.scores.shape[1]
  assert grouped.texts == texts and grouped.tokens == whole.tokens
  np.testing.assert_allclose(grouped.scores, whole.scores, **TOL)
  np.testing.assert_array_equal(grouped.target, targets)
  np.testing.assert_array_equal(grouped.input_ids, whole.input_ids)
  np.testing.assert_allclose(grouped.probabilities, whole.probabilities, atol=1e-6)
  for k, v in whole.extra.items():
    np.testing.assert_allclose(grouped.extra[k], v, **TOL)


def test_grouping_refusals():
  with pytest.raises(jaxplain.InputError, match=r"one class per example \(8\)"):
    jaxplain.attribute(model(), TEXTS, "smoothgrad", target=[0, 1, 2])
  qa = jaxplain.load_model(os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures",
                                        "tiny", "bert_qa"))
  with pytest.raises(jaxplain.InputError, match="2 targets for 3 texts; pass one per text"):
    jaxplain.attribute(qa, ["a", "b c", "d"], "gradient", target=[0, 1])
  with pytest.raises(jaxplain.InputError, match="cover the whole batch.*drop batch_size"):
    jaxplain.attribute(model(), TEXTS, "integrated_gradients", batch_size=2,
                       baseline=np.zeros((4, 32), np.float32))


def test_arrays_every_text_shares_keep_length_groups(monkeypatch):
  """Mask-LRP's ``head_mask`` ``[L, N]`` has no batch axis: the texts still run in length-sorted
  calls without packing (a per-text array such as a ``[T, E]`` baseline makes it one call), and
  packed (``CASES``)."""
  import jaxplain.api as api  # pylint: disable=g-import-not-at-top
  c = model().config
  mask = np.ones((c.num_layers, c.num_heads), np.float32)
  mask[0, 0] = 0.0
  whole = jaxplain.attribute(model(), TEXTS, "mask_lrp", head_mask=mask, batch_size=len(TEXTS))
  shapes = _spy(monkeypatch, "_attribute_batch")
  monkeypatch.setattr(api, "auto_token_rows", lambda: 48)
  grouped = jaxplain.attribute(model(), TEXTS, "mask_lrp", head_mask=mask, pack=False)
  assert len(shapes) > 1
  np.testing.assert_allclose(grouped.scores, whole.scores, **TOL)


@pytest.mark.parametrize("pack", [True, False])
def test_progress_bar_counts_the_texts(capsys, pack):
  jaxplain.attribute(model(), TEXTS, "saliency", pack=pack, progress=True)
  err = capsys.readouterr().err
  assert "attribute" in err and f"{len(TEXTS)}/{len(TEXTS)}" in err and "texts/s" in err
  jaxplain.attribute(model(), TEXTS, "saliency", pack=pack)  # not a terminal: no bar
  assert capsys.readouterr().err == ""


def _count_outputs_calls(monkeypatch, m) -> list:
  """A list that grows by one at each ``model.outputs`` call (a separate forward pass)."""
  calls = []
  real = type(m).outputs
  monkeypatch.setattr(type(m), "outputs", lambda self, *a, **k: calls.append(1) or real(
      self, *a, **k))
  return calls


@pytest.mark.parametrize("name,hyper", [("gradient", {}), ("saliency", dict(norm="l1")),
                                        ("gradient_x_input", {}),
                                        ("layer_gradient_x_activation", {}), ("attnlrp", {}),
                                        ("attnlrp", dict(include="all")), ("cp_lrp", {})])
def test_one_pass_methods_read_their_logits_off_their_own_pass(monkeypatch, name, hyper):
  """Packed or not, ``attribute`` takes the probabilities and predicted classes of the methods
  of one forward and one backward pass (``WITH_LOGITS``) from the method's own forward pass: no
  ``model.outputs`` call, and the same values as a separate forward and the kernel's own path
  for callable targets given those classes."""
  m = model()
  batch = m.encode(TEXTS)
  logits = np.asarray(m.outputs(batch).logits)
  predicted = logits.argmax(-1)

  @jax.jit  # a callable target: the kernels' path that finds no class itself
  def run(params, classes):
    rows = jnp.arange(len(TEXTS))
    return METHODS[name](m.forward, params, batch.device_part(),
                         lambda out: out.logits[rows, classes], **hyper)

  kernel = lambda classes: np.asarray(run(m.params, classes))
  ref = kernel(predicted)
  calls = _count_outputs_calls(monkeypatch, m)
  for pack in (False, True):
    a = jaxplain.attribute(m, TEXTS, name, pack=pack, **hyper)
    np.testing.assert_array_equal(a.target, predicted)
    np.testing.assert_allclose(a.probabilities, jax.nn.softmax(logits, -1), atol=1e-6)
    np.testing.assert_allclose(a.extra.get("layers", a.scores), ref, **TOL)
  other = (predicted + 1) % 3
  given = jaxplain.attribute(m, TEXTS, name, target=other, **hyper)
  np.testing.assert_array_equal(given.target, other)
  np.testing.assert_allclose(given.extra.get("layers", given.scores), kernel(other), **TOL)
  assert not calls


@pytest.mark.parametrize("name", ["integrated_gradients", "smoothgrad", "gae"])
def test_other_methods_find_their_logits_in_their_own_program(monkeypatch, name):
  """Every other method computes the logits (the probabilities and the predicted classes), its
  scores and its convergence gap in one compiled program, for a class target packed or not and
  for a callable target: no ``model.outputs`` call, and the logits of a separate forward pass."""
  m = model()
  logits = np.asarray(m.outputs(m.encode(TEXTS)).logits)
  calls = _count_outputs_calls(monkeypatch, m)
  for pack in (False, True):
    a = jaxplain.attribute(m, TEXTS, name, pack=pack, **HYPER.get(name, {}))
    np.testing.assert_array_equal(a.target, logits.argmax(-1))
    np.testing.assert_allclose(a.probabilities, jax.nn.softmax(logits, -1), atol=1e-6)
    assert (a.deltas is not None) == (name == "integrated_gradients")
  if name != "gae":  # Chefer's relprop seeds a class; it refuses callables
    by_fn = jaxplain.attribute(m, TEXTS, name, target=lambda out: out.logits[:, 0],
                               **HYPER.get(name, {}))
    assert by_fn.target is None
    np.testing.assert_allclose(by_fn.probabilities, jax.nn.softmax(logits, -1), atol=1e-6)
    assert (by_fn.deltas is not None) == (name == "integrated_gradients")
  assert not calls


def test_noise_tunnels_draw_each_texts_own_noise_wherever_it_runs(monkeypatch):
  """SmoothGrad through ``attribute``: text ``i`` draws from ``fold_in(key, i)`` in every layout
  (one call, length-sorted calls, packed rows), as row ``i`` of ``model.encode(texts)`` does
  in the kernel called directly with that key."""
  import jaxplain.api as api  # pylint: disable=g-import-not-at-top
  m = model()
  batch = m.encode(TEXTS)
  predicted = np.asarray(m.outputs(batch).logits).argmax(-1)
  ref = np.asarray(jax.jit(lambda params: METHODS["smoothgrad"](
      m.forward, params, batch.device_part(), jnp.asarray(predicted), key=jax.random.key(3),
      samples=2))(m.params))
  monkeypatch.setattr(api, "auto_token_rows", lambda: 48)  # several calls, filled with repeats
  for kwargs in (dict(pack=False), dict(pack=True), dict(batch_size=3)):
    a = jaxplain.attribute(m, TEXTS, "smoothgrad", seed=3, samples=2, **kwargs)
    np.testing.assert_allclose(a.scores, ref, **TOL)
  from_batch = jaxplain.attribute(m, batch, "smoothgrad", seed=3, samples=2)
  np.testing.assert_allclose(from_batch.scores, ref, **TOL)


def test_attribute_gives_mask_lrp_the_tokenizers_sep():
  """Mask-LRP drops [SEP] from attention: ``attribute`` passes the tokenizer's id (RoBERTa's
  ``</s>`` is 2), not the BERT default 102, which names another token there."""
  m = jaxplain.load_model(os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures",
                                       "tiny", "roberta_seq_cls"))
  from jaxplain.attribution import kernel_token_ids  # pylint: disable=g-import-not-at-top
  assert kernel_token_ids("mask_lrp", m.tokenizer, 1)["sep_token_id"] == 2
  # One compiled program: the default call's static hyperparameters are the explicit call's.
  # (With 102 the scores differ by over 1e-3 on these texts.)
  run = lambda **sep: jaxplain.attribute(m, TEXTS[:3], "mask_lrp", pack=False, **sep).scores
  np.testing.assert_array_equal(run(), run(sep_token_id=2))
