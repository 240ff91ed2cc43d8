"""Parity with the Hugging Face PyTorch models, layer by layer.

The references are committed fixtures written by ``tests/fixtures/make_fixtures.py`` from tiny
random BERT, RoBERTa, DistilBERT and ELECTRA models (every parameter random, biases and
LayerNorms included) with each head, and from the real all-MiniLM-L6-v2. Each hidden state and
each layer's attention is compared on its own, so a failure names the first layer that differs.
"""

import json
import os

import jax
import numpy as np
import pytest

import jaxplain
from jaxplain import Batch

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")
TINY = os.path.join(FIXTURES, "tiny")
FAMILIES = ("bert", "roberta", "distilbert", "electra")
HEADS = {"seq_cls": "sequence_classification", "token_cls": "token_classification",
         "qa": "question_answering", "mlm": "masked_lm"}
NAMES = [f"{family}_{head}" for family in FAMILIES for head in HEADS]

ATOL = 1e-4  # float32 drift here is <5e-6; exact vs tanh GELU in a head moves logits 2e-4.


def _batch(ref) -> Batch:
  return Batch(input_ids=ref["input_ids"], attention_mask=ref["attention_mask"],
               token_type_ids=ref["token_type_ids"])


@pytest.fixture(scope="module", params=NAMES)
def tiny(request):
  """``(name, model, reference, outputs)``: each tiny model loaded and run once per module."""
  name = request.param
  directory = os.path.join(TINY, name)
  model = jaxplain.load_model(directory)
  ref = dict(np.load(os.path.join(directory, "reference.npz")))
  out = jax.device_get(model.outputs(_batch(ref)))
  return name, model, ref, out


def test_every_fixture_exists():
  assert sorted(os.listdir(TINY)) == sorted(NAMES)


def test_config(tiny):
  name, model, ref, _ = tiny
  family, head = name.split("_", 1)
  assert model.config.family == family
  assert model.config.head == HEADS[head]
  assert model.config.num_layers == ref["attentions"].shape[0]
  if head == "seq_cls":
    assert model.labels == ("negative", "neutral", "positive")
  # Too small an effect for the parity tolerance, so read straight from config.json.
  with open(os.path.join(TINY, name, "config.json")) as f:
    hf = json.load(f)
  assert model.config.layer_norm_eps == hf.get("layer_norm_eps", 1e-12)
  assert model.config.activation == hf.get("hidden_act", hf.get("activation"))


def test_encode_matches_reference(tiny):
  """jaxplain's tokenising reproduces the ids, segments and padding of the HF tokenizer."""
  _, model, ref, _ = tiny
  for i, (text, pair) in enumerate(zip(ref["texts"], ref["text_pairs"])):
    batch = model.encode([str(text)], [str(pair)] if pair else None)
    t = batch.input_ids.shape[1]
    assert t == ref["input_ids"].shape[1]
    for key in ("input_ids", "attention_mask", "token_type_ids"):
      np.testing.assert_array_equal(getattr(batch, key)[0], ref[key][i], err_msg=f"{key} row {i}")


def test_hidden_states(tiny):
  name, model, ref, out = tiny
  real = ref["attention_mask"].astype(bool)
  ours, theirs = np.asarray(out.hidden), ref["hidden_states"]
  assert ours.shape == theirs.shape
  for layer in range(theirs.shape[0]):
    where = "the embeddings' output" if layer == 0 else f"layer {layer - 1}'s output"
    np.testing.assert_allclose(ours[layer][real], theirs[layer][real], atol=ATOL, rtol=0,
                               err_msg=f"{name}: hidden state {layer} ({where}) differs")


def test_attentions(tiny):
  name, _, ref, out = tiny
  real = ref["attention_mask"].astype(bool)
  ours, theirs = np.asarray(out.attention), ref["attentions"]
  assert ours.shape == theirs.shape
  for layer in range(theirs.shape[0]):
    for b in range(real.shape[0]):
      np.testing.assert_allclose(
          ours[layer, b][:, real[b]], theirs[layer, b][:, real[b]], atol=ATOL, rtol=0,
          err_msg=f"{name}: attention probabilities of layer {layer}, example {b} differ")


def test_logits(tiny):
  name, _, ref, out = tiny
  ours, theirs = np.asarray(out.logits), ref["logits"]
  assert ours.shape == theirs.shape
  if ours.ndim == 3:  # per-token heads: padding rows are not defined by the model's contract
    real = ref["attention_mask"].astype(bool)
    ours, theirs = ours[real], theirs[real]
  np.testing.assert_allclose(ours, theirs, atol=ATOL, rtol=0, err_msg=f"{name}: head logits")


@pytest.mark.slow
def test_minilm_matches_pytorch(minilm):
  ref = dict(np.load(os.path.join(FIXTURES, "minilm_reference.npz")))
  batch = minilm.encode([str(t) for t in ref["texts"]])
  for key in ("input_ids", "attention_mask", "token_type_ids"):
    np.testing.assert_array_equal(getattr(batch, key), ref[key], err_msg=key)
  out = jax.device_get(minilm.outputs(batch))
  real = ref["attention_mask"].astype(bool)
  for layer in range(ref["hidden_states"].shape[0]):
    np.testing.assert_allclose(np.asarray(out.hidden)[layer][real],
                               ref["hidden_states"][layer][real], atol=ATOL, rtol=0,
                               err_msg=f"MiniLM hidden state {layer} differs")
  np.testing.assert_allclose(out.logits, ref["pooled"], atol=ATOL, rtol=0,
                             err_msg="MiniLM mean-pooled embedding differs")
