"""HTML heatmaps: escaping, colour sign and scale, one span per word, page vs fragment.

The attributions here are built by hand (no model, no jax), so the file runs in milliseconds.
"""

import re

import numpy as np
import pytest

from jaxplain.result import Attribution
from jaxplain.viz import html as viz

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"


def _attribution(texts, words_per_text, scores, *, labels=("negative", "positive"),
                 method="gradient_x_input", hyper=None, target=None):
  """An :class:`Attribution` with one token per word, plus [CLS] and [SEP] around each text."""
  b = len(texts)
  t = max(len(w) for w in words_per_text) + 2
  word_ids = np.full((b, t), -1, np.int32)
  offsets = np.zeros((b, t, 2), np.int32)
  seq = np.full((b, t), -1, np.int32)
  mask = np.zeros((b, t), np.int32)
  full = np.zeros((b, t), np.float32)
  tokens = []
  for i, (text, words) in enumerate(zip(texts, words_per_text)):
    n = len(words) + 2
    mask[i, :n] = 1
    pos = 0
    for j, w in enumerate(words):
      start = text.index(w, pos)
      offsets[i, j + 1] = (start, start + len(w))
      word_ids[i, j + 1] = j
      seq[i, j + 1] = 0
      pos = start + len(w)
    full[i, 1:n - 1] = scores[i]
    tokens.append(["[CLS]", *words, "[SEP]"])
  probs = np.tile(np.asarray([[0.2, 0.8]], np.float32), (b, 1))
  return Attribution(
      scores=full, tokens=tokens, input_ids=np.zeros((b, t), np.int32), attention_mask=mask,
      word_ids=word_ids, offsets=offsets, sequence_ids=seq, texts=list(texts), text_pairs=None,
      target=np.full((b,), 1 if target is None else target, np.int32), probabilities=probs,
      labels=labels, method=method, hyper=hyper or {})


def _spans(page):
  return re.findall(r'<span class="jx-tok[^"]*" style="([^"]*)" title="([^"]*)" '
                    r'data-score="([^"]*)">(.*?)</span>', page)


@pytest.fixture
def hostile():
  text = f"a {SCRIPT} and {IMG} film"
  words = ["a", SCRIPT, "and", IMG, "film"]
  return _attribution([text], [words], [np.asarray([0.5, -1.0, 0.0, 0.25, 2.0])],
                      labels=("<b>neg</b>", '"pos" onmouseover=alert(2)'),
                      method="<i>ig</i>", hyper={"note": "<script>x</script>"})


def test_scripts_and_event_handlers_are_escaped(hostile):
  page = hostile.to_html(title="<title>t</title>")
  assert "<script" not in page and "<img" not in page and "<i>" not in page
  assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
  assert "&lt;img src=x onerror=alert(1)&gt;" in page
  assert "&quot;pos&quot; onmouseover=alert(2)" in page  # the quote cannot end an attribute
  assert "&lt;i&gt;ig&lt;/i&gt;" in page and "&lt;title&gt;t&lt;/title&gt;" in page
  assert "onerror=alert" not in re.sub(r"&lt;img src=x onerror=alert\(1\)&gt;", "", page)


def test_one_span_per_word_with_exact_scores(hostile):
  spans = _spans(viz.attribution_html(hostile))
  words, scores = hostile.word_scores(0)
  assert len(spans) == len(words) == 5
  assert [float(s[2]) for s in spans] == pytest.approx(scores.tolist())
  assert [s[1] for s in spans][-1] == "score 2"


def test_colour_sign_and_per_example_normalisation():
  a = _attribution(["good bad meh", "good bad meh"], [["good", "bad", "meh"]] * 2,
                   [np.asarray([2.0, -2.0, 0.0]), np.asarray([20.0, -5.0, 0.0])])
  spans = _spans(viz.attribution_html(a))
  colours = [re.search(r"background-color: (rgb\([^)]*\))", s[0]).group(1) for s in spans]
  red, blue, white = (viz.css_rgb(viz.POSITIVE_RGB), viz.css_rgb(viz.NEGATIVE_RGB),
                      viz.css_rgb(viz.NEUTRAL_RGB))
  assert colours[:3] == [red, blue, white]
  assert colours[3] == red  # 20 is this example's max: full red although 10x the first's
  r, g, b = viz.diverging_rgb(-0.25)
  assert colours[4] == f"rgb({r}, {g}, {b})" and b > r  # bluish, a quarter of the way


def test_colour_helpers():
  assert viz.diverging_rgb(1.0) == viz.POSITIVE_RGB
  assert viz.diverging_rgb(-1.0) == viz.NEGATIVE_RGB
  assert viz.diverging_rgb(0.0) == viz.NEUTRAL_RGB
  assert viz.diverging_rgb(7.0) == viz.POSITIVE_RGB  # clipped
  assert viz.diverging_rgb(float("nan")) == viz.NEUTRAL_RGB
  np.testing.assert_allclose(viz.normalise([1.0, -4.0, np.nan]), [0.25, -1.0, 0.0])
  np.testing.assert_array_equal(viz.normalise([0.0, 0.0]), [0.0, 0.0])
  assert viz.format_score(np.float32(0.1)) == "0.1"


def test_full_page_and_fragment(hostile):
  page = viz.attribution_html(hostile)
  assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
  assert '<meta charset="utf-8">' in page and "<style>" in page
  frag = viz.attribution_html(hostile, full_page=False)
  assert frag.startswith('<div class="jaxplain">') and "<html" not in frag and "<style>" in frag
  assert hostile._repr_html_() == frag
  for doc in (page, frag):  # self-contained: no scripts, no external resources
    assert not re.search(r"<script|<link|src=\"|https?://|@import", doc)


def test_tokens_view_meta_and_legend():
  a = _attribution(["a fine film"], [["a", "fine", "film"]], [np.asarray([0.1, 0.7, -0.2])])
  page = viz.attribution_html(a, aggregate=None)
  spans = _spans(page)
  assert [s[3] for s in spans] == ["[CLS]", "a", "fine", "film", "[SEP]"]
  assert page.count("jx-special") == 2 + 1  # two special spans + the CSS rule
  assert "predicted <b>positive</b> (p = 0.800)" in page
  assert "explaining <b>positive (p = 0.800)</b>" in page
  assert "method <b>gradient_x_input</b>" in page and 'class="jx-legend"' in page


def test_words_written_together_stay_together():
  a = _attribution(["isn't it"], [["isn", "'", "t", "it"]], [np.asarray([1.0, 1.0, 1.0, 1.0])])
  text = re.search(r'<div class="jx-text">(.*?)</div>', viz.attribution_html(a)).group(1)
  visible = re.sub(r"<[^>]+>", "", text)
  assert visible == "isn&#x27;t it"
