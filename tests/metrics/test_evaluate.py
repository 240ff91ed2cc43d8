"""evaluate(): score callables and lazily resolved method names, the written table, bad input,
and the data reader."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from jaxplain.errors import InputError
from jaxplain.metrics import evaluate, read_dataset

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")
TEXTS = ["a great film , truly fun", "dull and bad", "the film was okay", "great fun",
         "a bad , dull film"]
LABELS = [2, 0, 1, "positive", "negative"]


def random_scores(batch):
  key = jax.random.fold_in(jax.random.key(0), int(np.asarray(batch.input_ids).sum()))
  return jnp.where(jnp.asarray(batch.attention_mask) > 0,
                   jax.random.normal(key, np.shape(batch.input_ids)), 0.0)


def test_evaluate_writes_table_with_intervals(tiny_model, tmp_path):
  calls = []

  def position_scores(batch, target):   # a two-argument callable receives the targets
    calls.append(np.asarray(target))
    return np.asarray(batch.attention_mask, np.float32) * np.arange(batch.shape[1])

  result = evaluate(tiny_model, TEXTS, LABELS,
                    {"random": random_scores, "position": position_scores,
                     "ixg": "gradient_x_input"},
                    metrics=("comprehensiveness", "sufficiency", "aopc_log_odds", "plausibility"),
                    batch_size=4, target="gold", output_dir=tmp_path, resamples=200,
                    lexicon_path=os.path.join(FIXTURES, "vader_sample.txt"),
                    metric_options={"aopc_log_odds": {"min_length": 0}})
  table = result.table
  assert set(table.method) == {"random", "position", "ixg"}
  rows = table[table.metric == "comprehensiveness"]
  assert (rows.n == len(TEXTS)).all()
  assert (rows.ci_low <= rows["mean"]).all() and (rows["mean"] <= rows.ci_high).all()
  assert (table.explain_seconds > 0).all()
  assert {"sufficiency", "aopc", "log_odds", "lexicon_proxy/auprc"} <= set(table.metric)
  np.testing.assert_array_equal(np.concatenate(calls)[:len(TEXTS)], [2, 0, 1, 2, 0])
  assert result.per_example["random"]["comprehensiveness"].shape == (len(TEXTS),)
  md, csv, js = result.files
  assert "lexicon proxy, not human rationales" in open(md).read()
  assert len(pd.read_csv(csv)) == len(table)
  assert json.load(open(js))["config"]["target"] == "gold"


def test_evaluate_bad_input(tiny_model, tmp_path):
  with pytest.raises(InputError, match="2 texts but 1 labels"):
    evaluate(tiny_model, TEXTS[:2], [0], {"r": random_scores})
  with pytest.raises(InputError, match="unknown metrics"):
    evaluate(tiny_model, TEXTS, LABELS, {"r": random_scores}, metrics=("faithiness",))
  with pytest.raises(InputError, match="label 'meh'"):
    evaluate(tiny_model, TEXTS[:1], ["meh"], {"r": random_scores})
  with pytest.raises(InputError, match="plausibility needs"):
    evaluate(tiny_model, TEXTS, LABELS, {"r": random_scores}, metrics=("plausibility",))
  with pytest.raises(InputError, match="shape"):
    evaluate(tiny_model, TEXTS, LABELS, {"r": lambda b: np.zeros((1, 3))}, batch_size=4)
  with pytest.raises(InputError, match=r"NaN or inf in 4 example\(s\)"):
    evaluate(tiny_model, TEXTS, LABELS, {"r": lambda b: random_scores(b) / 0.0}, batch_size=4)
  with pytest.raises(InputError, match="chunk_size must be >= 1"):
    evaluate(tiny_model, TEXTS, LABELS, {"r": random_scores}, chunk_size=0)
  blocker = tmp_path / "file"
  blocker.write_text("")
  with pytest.raises(InputError, match="cannot write"):
    evaluate(tiny_model, TEXTS, LABELS, {"r": random_scores}, output_dir=blocker / "sub")


def test_read_dataset(tmp_path):
  df = pd.DataFrame({"category": ["fresh", "rotten", "plot", "fresh"],
                     "text": ["good", "bad", "a plot", "  "]})
  path = tmp_path / "rt.csv.bz2"
  df.to_csv(path, index=False)
  texts, labels = read_dataset(path, label_column="category",
                               label_map={"rotten": 0, "fresh": 1})
  assert texts == ["good", "bad"] and labels == [1, 0]
  jl = tmp_path / "d.jsonl"
  jl.write_text('{"text": "x y", "label": 1}\n{"text": "z", "label": 0}\n')
  assert read_dataset(jl, limit=1) == (["x y"], [1])
  with pytest.raises(InputError, match="no column.*sentence; it has text, label. .*text_column="
                     ".*--text-column"):
    read_dataset(jl, text_column="sentence")
  with pytest.raises(InputError, match="no data file"):
    read_dataset(str(tmp_path / "missing.csv"))
