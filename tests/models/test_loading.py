"""Loading checkpoints in every format, and the errors a user can cause, with their messages.

Weights formats are checked by rewriting one tiny BERT checkpoint (sharded safetensors,
``flax_model.msgpack``, ``pytorch_model.bin``) and asking for the same logits. Bad paths, bad
files and bad inputs must raise :class:`jaxplain.ModelLoadError` / :class:`jaxplain.InputError`
with a message that names the problem.
"""

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file, save_file

import jaxplain
from jaxplain import Batch
from jaxplain.models import BUCKETS, FINE_BUCKETS, bucket_length

TINY = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "tiny")
SOURCE = os.path.join(TINY, "bert_seq_cls")
_NOT_WEIGHTS = ("model.safetensors", "reference.npz")


@pytest.fixture(scope="module")
def bert():
  return jaxplain.load_model(SOURCE)


@pytest.fixture(scope="module")
def reference(bert):
  """``(batch, logits)`` of the original checkpoint on the fixture's inputs."""
  ref = np.load(os.path.join(SOURCE, "reference.npz"))
  batch = Batch(ref["input_ids"], ref["attention_mask"], ref["token_type_ids"])
  return batch, np.asarray(bert(batch))


def _weights() -> dict[str, np.ndarray]:
  return load_file(os.path.join(SOURCE, "model.safetensors"))


def _copy_without_weights(dst) -> str:
  """``dst`` with the tiny BERT's config and tokenizer, and no weights."""
  os.makedirs(dst, exist_ok=True)
  for name in os.listdir(SOURCE):
    if name not in _NOT_WEIGHTS:
      shutil.copy(os.path.join(SOURCE, name), os.path.join(dst, name))
  return str(dst)


def _with_weights(dst, weights: dict[str, np.ndarray]) -> str:
  directory = _copy_without_weights(dst)
  save_file(weights, os.path.join(directory, "model.safetensors"))
  return directory


def _assert_same_logits(directory, reference):
  batch, logits = reference
  np.testing.assert_array_equal(np.asarray(jaxplain.load_model(directory)(batch)), logits)


# Weights formats -------------------------------------------------------------------------------


def test_sharded_safetensors(tmp_path, reference):
  directory = _copy_without_weights(tmp_path)
  weights = _weights()
  names = sorted(weights)
  shards = {"model-00001-of-00002.safetensors": names[::2],
            "model-00002-of-00002.safetensors": names[1::2]}
  weight_map = {}
  for shard, keys in shards.items():
    save_file({k: weights[k] for k in keys}, os.path.join(directory, shard))
    weight_map.update({k: shard for k in keys})
  with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
    json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f)
  _assert_same_logits(directory, reference)


def test_sharded_safetensors_missing_shard(tmp_path):
  directory = _copy_without_weights(tmp_path)
  with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
    json.dump({"weight_map": {k: "model-00001-of-00001.safetensors" for k in _weights()}}, f)
  with pytest.raises(jaxplain.ModelLoadError, match="model-00001-of-00001.safetensors.*missing"):
    jaxplain.load_model(directory)


def _hf_flax_tree(weights: dict[str, np.ndarray]) -> dict:
  """Torch-named weights -> Hugging Face Flax naming (nested, ``kernel`` is ``[in, out]``)."""
  tree: dict = {}
  for name, value in weights.items():
    *path, leaf = name.split(".")
    parent = path[-1]
    if leaf == "weight" and "LayerNorm" in parent:
      leaf = "scale"
    elif leaf == "weight" and parent.endswith("embeddings"):
      leaf = "embedding"
    elif leaf == "weight":
      leaf, value = "kernel", value.T
    node = tree
    for part in path:
      node = node.setdefault(part, {})
    node[leaf] = value
  return tree


def test_flax_msgpack(tmp_path, reference):
  from flax import serialization  # pylint: disable=g-import-not-at-top
  directory = _copy_without_weights(tmp_path)
  tree = _hf_flax_tree(_weights())
  assert "bert" in tree and "kernel" in tree["bert"]["encoder"]["layer"]["0"]["output"]["dense"]
  with open(os.path.join(directory, "flax_model.msgpack"), "wb") as f:
    f.write(serialization.msgpack_serialize(tree))
  _assert_same_logits(directory, reference)


def test_pytorch_bin(tmp_path, reference):
  torch = pytest.importorskip("torch")
  directory = _copy_without_weights(tmp_path)
  state = {k: torch.from_numpy(v.copy()) for k, v in _weights().items()}
  torch.save(state, os.path.join(directory, "pytorch_model.bin"))
  _assert_same_logits(directory, reference)


# Bad paths and files --------------------------------------------------------------------------


def test_unknown_path(tmp_path):
  with pytest.raises(jaxplain.ModelLoadError, match="no model directory at .*nope"):
    jaxplain.load_model(str(tmp_path / "nope"))


def test_hub_id_offline(monkeypatch):
  from huggingface_hub import constants  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv("HF_HUB_OFFLINE", "1")
  monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # read once, at import
  with pytest.raises(jaxplain.ModelLoadError) as info:
    jaxplain.load_model("jaxplain-tests/no-such-model")
  message = str(info.value)
  assert "jaxplain-tests/no-such-model" in message
  assert "Hugging Face hub" in message and "directory" in message


def test_directory_without_config(tmp_path):
  shutil.copy(os.path.join(SOURCE, "model.safetensors"), tmp_path / "model.safetensors")
  with pytest.raises(jaxplain.ModelLoadError, match="has no config.json"):
    jaxplain.load_model(str(tmp_path))


def test_invalid_config_json(tmp_path):
  directory = _with_weights(tmp_path, _weights())
  with open(os.path.join(directory, "config.json"), "w") as f:
    f.write("{not json")
  with pytest.raises(jaxplain.ModelLoadError, match="not valid JSON"):
    jaxplain.load_model(directory)


def test_unsupported_model_type(tmp_path):
  directory = _with_weights(tmp_path, _weights())
  path = os.path.join(directory, "config.json")
  with open(path) as f:
    config = json.load(f)
  config["model_type"] = "gpt2"
  with open(path, "w") as f:
    json.dump(config, f)
  with pytest.raises(jaxplain.ModelLoadError, match="unsupported model_type 'gpt2'.*bert"):
    jaxplain.load_model(directory)


def test_no_weights(tmp_path):
  with pytest.raises(jaxplain.ModelLoadError, match="no weights in"):
    jaxplain.load_model(_copy_without_weights(tmp_path))


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_safetensors(tmp_path, damage):
  directory = _copy_without_weights(tmp_path)
  with open(os.path.join(SOURCE, "model.safetensors"), "rb") as f:
    data = f.read()
  data = data[:len(data) // 2] if damage == "truncated" else b"\x07" * 64 + data[64:]
  with open(os.path.join(directory, "model.safetensors"), "wb") as f:
    f.write(data)
  with pytest.raises(jaxplain.ModelLoadError, match="corrupt or truncated"):
    jaxplain.load_model(directory)


def test_missing_parameters_named(tmp_path):
  weights = _weights()
  del weights["bert.encoder.layer.1.output.dense.weight"]
  del weights["classifier.bias"]
  with pytest.raises(jaxplain.ModelLoadError, match="lacks 2 parameter") as info:
    jaxplain.load_model(_with_weights(tmp_path, weights))
  assert "layers.1.ffn_out.kernel" in str(info.value)
  assert "head.out.bias" in str(info.value)


def test_wrong_shape_named(tmp_path):
  weights = _weights()
  weights["classifier.weight"] = weights["classifier.weight"][:2]
  with pytest.raises(jaxplain.ModelLoadError, match="head.out.kernel has shape"):
    jaxplain.load_model(_with_weights(tmp_path, weights))


def test_unused_keys_warned(tmp_path, reference):
  weights = _weights()
  weights["bert.extra_adapter.weight"] = np.zeros((3, 3), np.float32)
  directory = _with_weights(tmp_path, weights)
  with pytest.warns(UserWarning, match="not used .*bert.extra_adapter.weight"):
    model = jaxplain.load_model(directory)
  batch, logits = reference
  np.testing.assert_array_equal(np.asarray(model(batch)), logits)


# Bad inputs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("texts, match", [
    ("", "empty or whitespace"),
    (["fine text", "  \n\t"], "text 1 is empty or whitespace"),
    ([], "no texts given"),
    ([3], "text 0 is a int, not a string"),
    (None, "expected a text string or a list of strings"),
    (b"bytes", "expected a text string"),
    (7, "expected a text string or a list of strings, got int"),
    ({"text": "a film"}, "got dict"),
    (pd.DataFrame({"text": ["a film"]}), "got a data frame; pass its text column"),
])
def test_bad_texts(bert, texts, match):
  with pytest.raises(jaxplain.InputError, match=match):
    bert.encode(texts)


@pytest.mark.parametrize("texts", [("a good film", "bad"), np.array(["a good film", "bad"]),
                                   (t for t in ["a good film", "bad"])])
def test_texts_from_any_iterable(bert, texts):
  np.testing.assert_array_equal(bert.encode(texts).input_ids,
                                bert.encode(["a good film", "bad"]).input_ids)


def test_pairs_of_another_length(bert):
  with pytest.raises(jaxplain.InputError, match="2 texts but 1 text pairs"):
    bert.encode(["a", "b"], ["c"])


def test_over_long_input_truncates_with_warning(bert, capfd):
  text = " ".join(["good"] * 100)
  with pytest.warns(jaxplain.TruncationWarning, match="longer than the 40-token limit") as w:
    batch = bert.encode([text, "bad"])
  assert w[0].filename == __file__  # points at the caller's line, not at jaxplain
  assert "Token indices sequence length" not in capfd.readouterr().err  # one message, ours
  with pytest.warns(jaxplain.TruncationWarning) as w:  # deeper inside jaxplain: the same
    jaxplain.attribute(bert, [text, "bad"], "gradient", pack=False)
  assert w[0].filename == __file__
  assert batch.input_ids.shape == (2, bert.max_length)
  assert batch.attention_mask[0].all()
  assert batch.input_ids[0, -1] == bert.tokenizer.sep_token_id


def test_over_long_input_refused_without_truncation(bert):
  with pytest.raises(jaxplain.InputError, match="longer than the 40-token limit"):
    bert.encode(" ".join(["good"] * 100), truncate=False)


def test_max_length_out_of_range(bert):
  with pytest.raises(jaxplain.InputError, match="max_length 41 is outside"):
    bert.encode("good", max_length=41)


@pytest.mark.parametrize("target, match", [
    (3, "target class 3 is out of range for 3 classes"),
    (-1, "target class -1 is out of range"),
    (np.array([0, 5]), "target class 5 is out of range"),
    (np.array([0, 1, 2]), "target has shape"),
    (1.5, "not an integer class index"),
])
def test_target_out_of_range(bert, target, match):
  with pytest.raises(jaxplain.InputError, match=match):
    bert.check_target(target, batch_size=2)


@pytest.mark.parametrize("target, index", [
    ("positive", 2), ("Neutral", 1), (["negative", "POSITIVE"], [0, 2]), (["neutral", 0], [1, 0]),
    (np.array(["negative", "positive"]), [0, 2]), (np.array("neutral"), 1), (1, 1),
    (None, None)])
def test_label_names_as_targets(bert, target, index):
  assert bert.resolve_target(target) == index


def test_unknown_label_name(bert):
  with pytest.raises(jaxplain.InputError, match="unknown target 'happy'; pass a class index 0..2 "
                     "or one of the labels: negative, neutral, positive"):
    bert.resolve_target(["positive", "happy"])


@pytest.mark.parametrize("target", [0, 2, np.array([2, 0]), None, lambda outputs: outputs.logits])
def test_target_in_range(bert, target):
  bert.check_target(target, batch_size=2)


# Tokenising ------------------------------------------------------------------------------------


def test_text_pairs(bert):
  batch = bert.encode(["the movie was good"], ["it is bad"])
  tokens = bert.tokens(batch)[0]
  assert tokens == ["[CLS]", "the", "movie", "was", "good", "[SEP]", "it", "is", "bad", "[SEP]"]
  n = len(tokens)
  np.testing.assert_array_equal(batch.token_type_ids[0, :n], [0] * 6 + [1] * 4)
  np.testing.assert_array_equal(batch.word_ids[0, :n], [-1, 0, 1, 2, 3, -1, 4, 5, 6, -1])
  np.testing.assert_array_equal(batch.sequence_ids[0, :n], [-1, 0, 0, 0, 0, -1, 1, 1, 1, -1])
  assert (batch.token_type_ids[0, n:] == 0).all() and (batch.word_ids[0, n:] == -1).all()
  np.testing.assert_array_equal(batch.offsets[0, 6], [0, 2])  # "it", in its own text


def test_word_ids_of_word_pieces(bert):
  batch = bert.encode("films")  # "film" + "##s"
  assert bert.tokens(batch)[0] == ["[CLS]", "film", "##s", "[SEP]"]
  np.testing.assert_array_equal(batch.word_ids[0, :4], [-1, 0, 0, -1])


@pytest.mark.parametrize("words, length", [(1, 16), (14, 16), (15, 24), (23, 32), (31, 40), (38, 40)])
def test_bucket_padding(bert, words, length):
  batch = bert.encode(["good " * words, "bad"])  # words + [CLS] + [SEP] tokens
  assert batch.input_ids.shape == (2, length)
  np.testing.assert_array_equal(batch.attention_mask.sum(1), [words + 2, 3])
  assert (batch.input_ids[batch.attention_mask == 0] == bert.tokenizer.pad_token_id).all()


def test_fine_buckets_pad_to_steps_of_four(bert):
  fine = bert.with_buckets("fine")
  text = "good " * 15  # 17 tokens
  assert fine.encode(text).input_ids.shape == (1, 20)
  assert bert.encode(text).input_ids.shape == (1, 24)  # the original keeps its buckets
  assert fine.params is bert.params and fine.forward is bert.forward  # compiled programs shared
  assert FINE_BUCKETS[:13] == tuple(range(16, 65, 4)) and FINE_BUCKETS[13:] == BUCKETS[7:]
  assert bert.with_buckets([12, 20]).encode(["good " * 8, "bad"]).input_ids.shape == (2, 12)
  assert bert.with_buckets("default").buckets == BUCKETS
  for bad, match in (("huge", "unknown bucket preset"), ([], "increasing positive"),
                     ([16, 16], "increasing positive"), ([16.0], "increasing positive"),
                     (7, "increasing positive")):
    with pytest.raises(jaxplain.InputError, match=match):
      bert.with_buckets(bad)


def test_bucket_length():
  assert BUCKETS[0] == 16 and list(BUCKETS) == sorted(BUCKETS)
  assert [bucket_length(n, 512) for n in (1, 16, 17, 100, 500, 512)] == [16, 16, 24, 112, 512, 512]
  assert bucket_length(33, 40) == 40
  assert bucket_length(600, 512) == 512


def test_a_model_loaded_again_reuses_the_compiled_programs(bert):
  """Forwards of the same graph are equal, so a model loaded again (or rebuilt from other
  parameters) runs the programs compiled for the first: no XLA compile, and its own
  parameters' scores."""
  import jax  # pylint: disable=g-import-not-at-top
  again = jaxplain.load_model(SOURCE)
  assert again.forward == bert.forward and hash(again.forward) == hash(bert.forward)
  assert jaxplain.load_model(os.path.join(TINY, "roberta_seq_cls")).forward != bert.forward
  tuned = jaxplain.models.model_from_params(
      bert.config, jax.tree.map(lambda p: p * 1.5, bert.params), bert.tokenizer, bert.labels)
  assert tuned.forward == bert.forward
  texts = ["a b c", "d e"]
  first = jaxplain.attribute(bert, texts, "gradient_x_input", target=0)
  compiles = []

  def listen(event, duration, **kwargs):
    del duration, kwargs
    if event == "/jax/core/compile/backend_compile_duration":
      compiles.append(event)

  jax.monitoring.register_event_duration_secs_listener(listen)
  try:
    same = jaxplain.attribute(again, texts, "gradient_x_input", target=0)
    other = jaxplain.attribute(tuned, texts, "gradient_x_input", target=0)
  finally:
    jax.monitoring.unregister_event_duration_listener(listen)
  assert not compiles
  np.testing.assert_array_equal(same.scores, first.scores)
  assert not np.allclose(other.scores, first.scores)
