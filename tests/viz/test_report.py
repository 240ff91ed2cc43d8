"""The HTML report: escaping, the leaderboard, bad sweep directories, and the page in Chromium.

Pure-Python tests build :class:`ReportData` (or a tiny sweep directory) by hand: no model, no
jax compile. The browser tests open the rendered page in headless Chromium through Playwright
(``pip install playwright`` + Debian's ``apt-get install chromium``; never ``playwright
install``) and skip, saying why, only when either cannot be found.
"""

import base64
import hashlib
import io
import json
import os
import re

import numpy as np
import pytest

from jaxplain.viz import report as rp
from jaxplain.viz.report_data import (Curve, HeadGrid, LayerTokenMap, ReportData,
                                      ReportExample)

PWNED = '<img src=x onerror="window.__pwned=1">'
SCRIPT = "<script>window.__pwned=2</script>"
CLOSE = "</script><script>window.__pwned=3</script>"
METHODS = ("gradient_x_input", "integrated_gradients", "rollout")
# comprehensiveness (higher is better) means 0.2, 0.5, 0.35: the sorted order is known.
COMP_MEANS = {"gradient_x_input": 0.2, "integrated_gradients": 0.5, "rollout": 0.35}


def _examples(n: int = 25) -> list[ReportExample]:
  rng = np.random.default_rng(0)
  texts = [f"an utterly charming film {PWNED}", f"a dull {SCRIPT} mess", f"odd {CLOSE} & co"]
  texts += [f"review number {i} of a film" for i in range(n - len(texts))]
  out = []
  for i, text in enumerate(texts):
    words = text.split(" ")
    scores = {m: (words, rng.normal(size=len(words)).astype(np.float32)) for m in METHODS}
    out.append(ReportExample(id=f"ex{i}", text=text, label="positive" if i % 2 else "negative",
                             prediction="positive", probability=0.75, words=scores))
  return out


def _data(**kw) -> ReportData:
  rng = np.random.default_rng(1)
  n = 25
  metrics = {m: {"comprehensiveness": COMP_MEANS[m] + rng.normal(0, 0.01, n),
                 "sufficiency": rng.normal(0.1, 0.05, n)} for m in METHODS}
  metrics["rollout"]["sufficiency"][:5] = np.nan
  curve = Curve("deletion_morf_curve", np.linspace(0, 1, 11),
                {m: np.sort(rng.random((n, 11)), axis=1)[:, ::-1] for m in METHODS})
  base = dict(title=f"sweep {SCRIPT}", methods=list(METHODS), metrics=metrics,
              higher_is_better={"comprehensiveness": True, "sufficiency": False},
              seconds_per_example={"gradient_x_input": 0.01, "integrated_gradients": 0.2,
                                   "rollout": 0.005},
              examples=_examples(n), curves=[curve],
              diffmask=[LayerTokenMap("ex0", ["[CLS]", "a", PWNED, "[SEP]"],
                                      rng.random((4, 8)), "DiffMask ex0")],
              head_grids=[HeadGrid("head mask", (rng.random((6, 12)) > 0.7).astype(float))],
              meta={"model": f"tiny {PWNED}"}, missing=[f"shard {SCRIPT} is missing"])
  base.update(kw)
  return ReportData(**base)


@pytest.fixture(scope="module")
def page_html() -> str:
  """A page from hand-built ReportData: curves, DiffMask and head grids included."""
  return rp.render_report(_data(), page_size=10, resamples=200)


# --- a tiny sweep directory in the format jaxplain.corpus writes (docs/sweep_schema.md) ---------

SWEEP_METRICS = ("comprehensiveness", "sufficiency", "deletion_morf_area")
LABELS = ("negative", "positive")


def _sweep_table(examples: list[ReportExample], indices, methods=METHODS, curves: bool = False):
  """One shard: the columns of ``jaxplain.corpus.rows.RowBuilder`` for ``examples[indices]``."""
  import pyarrow as pa
  rng = np.random.default_rng(2)
  f32, i32 = pa.float32(), pa.int32()
  cols = {"index": (pa.int64(), []), "id": (pa.string(), []), "text": (pa.string(), []),
          "label": (i32, []), "prediction": (i32, []), "target": (i32, []),
          "probabilities": (pa.list_(f32), []), "truncated": (pa.bool_(), []),
          "n_tokens": (i32, []), "tokens": (pa.list_(pa.string()), []),
          "input_ids": (pa.list_(i32), []), "word_ids": (pa.list_(i32), []),
          "words": (pa.list_(pa.string()), [])}
  for m in methods:
    cols[f"scores.{m}"] = (pa.list_(f32), [])
    cols[f"word_scores.{m}"] = (pa.list_(f32), [])
    for k in SWEEP_METRICS:
      cols[f"{k}.{m}"] = (f32, [])
    for k in ("comprehensiveness_curve", "sufficiency_curve"):  # per ERASER bin
      cols[f"{k}.{m}"] = (pa.list_(f32), [])
    if curves:
      cols[f"deletion_morf_curve.{m}"] = (pa.list_(f32), [])
  for i in indices:
    ex = examples[i]
    words = ex.words[methods[0]][0]
    n = len(words) + 2
    values = {"index": i, "id": ex.id, "text": ex.text, "label": i % 2, "prediction": 1,
              "target": 1, "probabilities": [0.25, 0.75], "truncated": False, "n_tokens": n,
              "tokens": ["[CLS]", *words, "[SEP]"], "input_ids": list(range(n)),
              "word_ids": [-1, *range(len(words)), -1], "words": words}
    for m in methods:
      ws = [float(x) for x in ex.words[m][1]]
      values[f"scores.{m}"] = [0.0, *ws, 0.0]
      values[f"word_scores.{m}"] = ws
      values[f"comprehensiveness.{m}"] = COMP_MEANS.get(m, 0.0) + rng.normal(0, 0.01)
      values[f"sufficiency.{m}"] = rng.normal(0.1, 0.05)
      values[f"deletion_morf_area.{m}"] = rng.random()
      values[f"comprehensiveness_curve.{m}"] = list(np.sort(rng.random(5)))
      values[f"sufficiency_curve.{m}"] = list(np.sort(rng.random(5))[::-1])
      if curves:
        values[f"deletion_morf_curve.{m}"] = list(np.linspace(1, 0, 11) * rng.random())
    for name, (_, out) in cols.items():
      out.append(values[name])
  return pa.table({name: pa.array(v, type=t) for name, (t, v) in cols.items()})


def write_sweep(directory, examples: list[ReportExample], *, shards: int = 2,
                merged: bool = True, complete: bool = True, schema_version: int | None = None,
                methods=METHODS, curves: bool = False) -> str:
  """Writes a sweep output directory (1 process) the way ``jaxplain.corpus.sweep`` does."""
  import pyarrow.parquet as pq
  from jaxplain.corpus import SCHEMA_VERSION
  version = SCHEMA_VERSION if schema_version is None else schema_version
  os.makedirs(directory, exist_ok=True)
  config = {"data": {"source": "reviews.csv", "text_column": "text", "label_column": "label"},
            "methods": [[m, [["steps", 8]] if m == "integrated_gradients" else []]
                        for m in methods],
            "metrics": ["comprehensiveness", "sufficiency", "deletion"], "target": "predicted"}
  identity = {"schema_version": version, "config_hash": "0" * 64, "config": config,
              "process_count": 1, "corpus": {"examples": len(examples), "sha256": "0" * 64},
              "model": {"name": "tiny <b>model</b>", "labels": list(LABELS),
                        "dtype": "float32", "max_length": 40}}
  per_shard = int(np.ceil(len(examples) / shards))
  entries, files, columns = {}, [], None
  for k in range(shards):
    rows = range(k * per_shard, min((k + 1) * per_shard, len(examples)))
    table = _sweep_table(examples, rows, methods, curves)
    name = f"part-p00000-of-00001-{k:05d}.parquet"
    pq.write_table(table, os.path.join(directory, name), compression="zstd")
    size = os.path.getsize(os.path.join(directory, name))
    entries[str(k)] = {"shard": k, "file": name, "rows": table.num_rows, "bytes": size,
                       "sha256": "0" * 64, "errors": [], "padding": {}}
    files.append(name)
    columns = table.schema.names
  process = {**identity, "process_index": 0, "complete": complete, "shards": entries,
             "num_shards": shards, "columns": columns}
  with open(os.path.join(directory, "manifest-p00000-of-00001.json"), "w") as f:
    json.dump(process, f)
  if merged:
    with open(os.path.join(directory, "manifest.json"), "w") as f:
      json.dump({**identity, "process_index": None, "complete": True, "files": files,
                 "rows": len(examples), "errors": 0, "columns": columns}, f)
  return str(directory)


def run_report(*args):
  from typer.testing import CliRunner
  from jaxplain.cli import app
  return CliRunner().invoke(app, ["report", *map(str, args)])


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> str:
  return write_sweep(tmp_path_factory.mktemp("sweep") / "out", _examples())


@pytest.fixture(scope="module")
def sweep_html(sweep_dir, tmp_path_factory) -> str:
  """The page ``jaxplain report`` writes for the tiny sweep."""
  out = tmp_path_factory.mktemp("report") / "report.html"
  result = run_report(sweep_dir, "-o", out, "--page-size", "10", "--resamples", "200")
  assert result.exit_code == 0, result.output
  return out.read_text(encoding="utf-8")


# --- pure Python -------------------------------------------------------------------------------

def test_script_json_cannot_close_a_script_block():
  value = ["</script><script>alert(1)</script>", "<!-- & -->", "\u2028"]
  text = rp.script_json(value)
  assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
  assert json.loads(text) == value


def test_untrusted_text_is_escaped_everywhere(page_html):
  # Exactly two script elements: the JSON search index and the page's own script.
  assert len(re.findall(r"<script\b", page_html)) == 2
  assert "<img src=x" not in page_html and "window.__pwned=2</script>" not in page_html
  assert "&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;" in page_html
  assert "&lt;script&gt;window.__pwned=2&lt;/script&gt;" in page_html


def test_page_is_self_contained_with_a_script_hash_csp(page_html):
  assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page_html)
  assert "@import" not in page_html and "url(" not in page_html
  digest = base64.b64encode(hashlib.sha256(rp.SCRIPT.encode()).digest()).decode()
  assert f"script-src 'sha256-{digest}'" in page_html
  assert f"<script>{rp.SCRIPT}</script>" in page_html
  assert page_html.count('src="data:image/svg+xml;base64,') == 3  # curve, DiffMask, heads


def test_leaderboard_rows_best_and_missing_values(page_html):
  table = page_html[page_html.index('id="jx-table"'):page_html.index("</table>")]
  rows = re.findall(r'<tr data-method="([^"]+)">', table)
  assert rows == list(METHODS)
  best = re.findall(r'<tr data-method="([^"]+)">(?:(?!</tr>).)*class="jx-best"', table)
  assert "integrated_gradients" in best  # best comprehensiveness
  board = _data().leaderboard(resamples=200)
  r = board[(board.method == "rollout") & (board.metric == "sufficiency")].iloc[0]
  assert r.n == 20 and r.ci_low <= r["mean"] <= r.ci_high  # NaNs dropped, not propagated
  assert not board[board.metric == "sufficiency"].higher_is_better.any()


def test_missing_items_and_paging_are_rendered(page_html):
  assert "Incomplete input" in page_html and "shard &lt;script&gt;" in page_html
  assert len(re.findall(r'class="jx-example jx-row" data-index="\d+"\s*>', page_html)) == 10
  assert len(re.findall(r'class="jx-example jx-row" data-index="\d+" hidden>', page_html)) == 15


def test_max_examples_limits_the_embedded_heatmaps():
  html = rp.render_report(_data(num_examples=500), max_examples=4, resamples=50)
  assert len(re.findall(r'class="jx-example jx-row"', html)) == 4
  assert "500 (4 shown as heatmaps)" in html


def test_report_without_metrics_or_examples():
  html = rp.render_report(ReportData(title="empty", methods=[]))
  assert "No metric values" in html and 'id="jx-list"' not in html


# --- sweep directories: good, partial, missing, old ---------------------------------------------

def test_load_sweep_reads_metrics_examples_and_labels(sweep_dir):
  from jaxplain.viz.report_data import load_sweep
  data = load_sweep(sweep_dir, max_examples=7)
  assert data.methods == list(METHODS) and data.missing == []
  assert data.metric_names() == list(SWEEP_METRICS)
  assert data.num_examples == 25 and len(data.metrics["rollout"]["sufficiency"]) == 25
  assert data.higher_is_better == {"comprehensiveness": True, "sufficiency": False,
                                   "deletion_morf_area": False}
  assert [e.id for e in data.examples] == [f"ex{i}" for i in range(7)]
  first = data.examples[0]
  assert first.text.endswith(PWNED) and first.label == "negative"
  assert first.prediction == "positive" and first.probability == pytest.approx(0.75)
  np.testing.assert_allclose(first.words["rollout"][1], _examples()[0].words["rollout"][1],
                             rtol=1e-6)
  assert data.meta["hyperparameters"] == '{"integrated_gradients": {"steps": 8}}'
  board = data.leaderboard(resamples=100)
  comp = board[board.metric == "comprehensiveness"].set_index("method")["mean"]
  assert comp.idxmax() == "integrated_gradients"


def test_sweep_report_page_is_escaped_and_complete(sweep_html):
  assert len(re.findall(r"<script\b", sweep_html)) == 2
  assert "<img src=x" not in sweep_html and "<b>model</b>" not in sweep_html
  assert "tiny &lt;b&gt;model&lt;/b&gt;" in sweep_html
  rows = re.findall(r'<tr data-method="([^"]+)">', sweep_html)
  assert rows == list(METHODS)
  assert "not recorded by this sweep" in sweep_html and "Incomplete input" not in sweep_html


def _assert_one_line_error(result, *needles):
  assert result.exit_code == 2, result.output
  err = result.stderr.strip()
  assert err.startswith("jaxplain: error: ") and "\n" not in err, err
  assert "Traceback" not in result.output
  for needle in needles:
    assert needle in err, err


def test_missing_directory_is_one_line(tmp_path):
  _assert_one_line_error(run_report(tmp_path / "nope"), "no sweep directory at")


def test_a_file_is_not_a_sweep(tmp_path):
  path = tmp_path / "x.parquet"
  path.write_text("")
  _assert_one_line_error(run_report(path), "is a file, not a sweep directory")


def test_empty_directory_says_run_a_sweep(tmp_path):
  _assert_one_line_error(run_report(tmp_path), "holds no sweep output", "jaxplain sweep")


@pytest.mark.parametrize("version,needle", [(0, "older jaxplain"), (99, "newer jaxplain")])
def test_other_schema_versions_are_refused(tmp_path, version, needle):
  d = write_sweep(tmp_path / "old", _examples(4), schema_version=version)
  _assert_one_line_error(run_report(d), needle, "schema version")


def test_manifest_without_schema_version_or_corrupt(tmp_path):
  d = write_sweep(tmp_path / "s", _examples(4), merged=False)
  path = os.path.join(d, "manifest-p00000-of-00001.json")
  manifest = json.load(open(path))
  del manifest["schema_version"]
  json.dump(manifest, open(path, "w"))
  _assert_one_line_error(run_report(d), "no schema_version")
  with open(path, "w") as f:
    f.write("{not json")
  _assert_one_line_error(run_report(d), "unreadable", "manifest")


def test_shards_without_a_manifest_are_refused(tmp_path):
  d = write_sweep(tmp_path / "s", _examples(4))
  for name in os.listdir(d):
    if name.startswith("manifest"):
      os.remove(os.path.join(d, name))
  _assert_one_line_error(run_report(d), "no manifest")


def test_missing_and_truncated_shards_are_reported(tmp_path):
  d = write_sweep(tmp_path / "s", _examples(9), shards=3)
  os.remove(os.path.join(d, "part-p00000-of-00001-00001.parquet"))
  with open(os.path.join(d, "part-p00000-of-00001-00002.parquet"), "ab") as f:
    f.write(b"junk")
  out = tmp_path / "r.html"
  result = run_report(d, "-o", out)
  assert result.exit_code == 0, result.output
  warnings = [l for l in result.stderr.splitlines() if l.startswith("jaxplain: warning: ")]
  assert len(warnings) == 2, result.stderr
  assert "part-p00000-of-00001-00001.parquet is listed in the manifest but missing" in warnings[0]
  assert "not the" in warnings[1] and "skipped" in warnings[1]
  html = out.read_text()
  assert "Incomplete input" in html and "3 examples" in result.stderr
  assert len(re.findall(r'<tr data-method="', html)) == len(METHODS)


def test_unfinished_sweep_reports_what_is_there(tmp_path):
  d = write_sweep(tmp_path / "s", _examples(6), merged=False, complete=False)
  from jaxplain.viz.report_data import load_sweep
  data = load_sweep(d)
  assert data.num_examples == 6 and len(data.examples) == 6
  assert any("merged manifest) is missing" in m for m in data.missing)
  assert any("process 0 has written 2 of 2 shards" in m for m in data.missing)


def test_no_shards_yet(tmp_path):
  d = write_sweep(tmp_path / "s", _examples(4), merged=False, complete=False)
  for name in os.listdir(d):
    if name.endswith(".parquet"):
      os.remove(os.path.join(d, name))
  path = os.path.join(d, "manifest-p00000-of-00001.json")
  manifest = json.load(open(path))
  manifest["shards"] = {}
  json.dump(manifest, open(path, "w"))
  out = tmp_path / "r.html"
  result = run_report(d, "-o", out)
  assert result.exit_code == 0, result.output
  assert "no shard has been written yet" in result.stderr
  assert "No metric values" in out.read_text()


def test_curve_columns_and_head_masks_are_drawn(tmp_path):
  from jaxplain.attribution.heads import HeadMasks
  from jaxplain.viz.report_data import load_sweep
  d = write_sweep(tmp_path / "s", _examples(5), curves=True)
  grid = np.zeros((2, 3), np.float32)
  grid[1, 2] = 1
  masks = HeadMasks(synt=grid, pos=grid * 0, synt_pos=grid, positional_share=grid,
                    positional_offset=grid.astype(np.int32), accuracy={"nsubj": grid},
                    baseline={"nsubj": 0.5}, baseline_offset={"nsubj": 1},
                    count={"nsubj": 3}, tokens=10, texts=2, settings={})
  with open(os.path.join(d, "head_masks.json"), "w") as f:
    f.write(masks.to_json())
  data = load_sweep(d)
  assert [c.name for c in data.curves] == ["comprehensiveness_curve", "sufficiency_curve",
                                           "deletion_morf_curve"]
  eraser, _, deletion = data.curves
  assert deletion.values["rollout"].shape == (5, 11) and deletion.ylabel == "p(target)"
  np.testing.assert_allclose(eraser.x, [0.01, 0.05, 0.1, 0.2, 0.5])
  assert eraser.values["rollout"].shape == (5, 5) and "drop" in eraser.ylabel
  assert data.head_grids and data.head_grids[0].values.sum() == 1
  html = rp.render_report(data, resamples=50)
  assert 'id="jx-curves"' in html and 'id="jx-heads"' in html


def _diffmask_json(texts=("a <b>film</b>", "dull")) -> dict:
  """The layout of ``jaxplain diffmask explain --json`` (2 layers: keep is [T, 4])."""
  rng = np.random.default_rng(3)
  examples = []
  for text in texts:
    tokens = ["[CLS]", *text.split(" "), "[SEP]"]
    examples.append({"text": text, "label": "positive", "probability": 0.7, "tokens": tokens,
                     "indices": ["E", "1", "2", "3"],
                     "keep": rng.random((len(tokens), 4)).tolist(), "survived": []})
  return {"model": "tiny", "gates": "/g", "variant": "hidden", "examples": examples}


def test_diffmask_json_in_the_sweep_dir_is_drawn(tmp_path):
  from jaxplain.viz.report_data import load_sweep
  d = write_sweep(tmp_path / "s", _examples(4))
  with open(os.path.join(d, "diffmask.json"), "w") as f:
    json.dump(_diffmask_json(), f)
  data = load_sweep(d)
  assert [m.tokens for m in data.diffmask] == [["[CLS]", "a", "<b>film</b>", "[SEP]"],
                                               ["[CLS]", "dull", "[SEP]"]]
  assert data.diffmask[0].keep.shape == (4, 4) and data.missing == []
  assert data.diffmask[0].title.startswith("hidden gates: a <b>film</b>")
  html = rp.render_report(data, resamples=50)
  assert html.count('<figure><img alt="hidden gates: a &lt;b&gt;film&lt;/b&gt;') == 1
  assert 'id="jx-diffmask"' in html and "<b>film</b>" not in html


def test_bad_side_files_are_noted_or_refused(tmp_path):
  from jaxplain.viz.report_data import load_sweep
  d = write_sweep(tmp_path / "s", _examples(4))
  bad = _diffmask_json()
  bad["examples"][1]["keep"] = [[0.5, 0.5]]  # one row for three tokens
  with open(os.path.join(d, "diffmask.json"), "w") as f:
    json.dump(bad, f)
  with open(os.path.join(d, "head_masks.json"), "w") as f:
    f.write("{not json")
  data = load_sweep(d)  # found in the directory: skipped, and said so
  assert data.diffmask == [] and data.head_grids == [] and data.num_examples == 4
  assert any("diffmask.json in the sweep directory is unreadable" in m and "example 1" in m
             for m in data.missing), data.missing
  assert any("head_masks.json in the sweep directory is unreadable" in m for m in data.missing)
  # Passed explicitly: one error line.
  _assert_one_line_error(run_report(d, "--diffmask", os.path.join(d, "diffmask.json")),
                         "cannot read the DiffMask keep probabilities", "example 1",
                         "jaxplain diffmask explain --json")
  _assert_one_line_error(run_report(d, "--heads", tmp_path / "nope.json"),
                         "cannot read the head masks", "jaxplain heads")


def test_words_keep_the_spacing_of_the_text():
  words = ["<", "script", ">", "x", "don", "'", "t", "FILM"]
  assert rp.word_gaps("<script> x don't  film", words) == ["", "", "", " ", " ", "", "", " "]
  assert rp.word_gaps("a b", ["a", "zz", "b"]) == ["", " ", " "]  # not found: spaces
  data = _data(examples=[ReportExample("e", "<b>bold</b> don't", words={
      "rollout": (["<", "b", ">", "bold", "<", "/", "b", ">", "don", "'", "t"],
                  np.arange(11.0))})], methods=["rollout"], metrics={})
  html = rp.render_report(data, resamples=10)
  spans = re.search(r'<div class="jx-text">(.*?)</div>', html).group(1)
  text = re.sub(r"<[^>]+>", "", spans)
  assert text == "&lt;b&gt;bold&lt;/b&gt; don't".replace("'", "&#x27;")


@pytest.mark.slow
def test_real_sweep_output_matches_the_test_format(tmp_path):
  """A real ``jaxplain.corpus.sweep`` on the tiny model: the report reads it, and every column
  is one :func:`write_sweep` writes (so the hand-written sweeps above stay in the real format)."""
  import pyarrow.parquet as pq
  import jaxplain
  from jaxplain.corpus import make_config, sweep
  from jaxplain.viz.report_data import load_sweep
  data = tmp_path / "data.csv"
  data.write_text('text,label\n"a charming <b>film</b>",1\n"a dull mess",0\n')
  model = jaxplain.load_model(os.path.join(os.path.dirname(__file__), "..", "fixtures", "tiny",
                                           "bert_seq_cls"))
  config = make_config(data={"source": str(data), "label_column": "label"},
                       output=str(tmp_path / "out"), methods={"gradient_x_input": {}},
                       metrics=["comprehensiveness", "sufficiency"], batch_size=2)
  sweep(config, model=model, progress=False, log=lambda line: None)
  report = load_sweep(tmp_path / "out")
  assert report.missing == [] and report.methods == ["gradient_x_input"]
  assert report.metric_names() == ["comprehensiveness", "sufficiency"]
  assert report.examples[0].words["gradient_x_input"][0][:2] == ["a", "charming"]
  real = pq.read_schema(next((tmp_path / "out").glob("part-*.parquet"))).names
  ours = _sweep_table(_examples(3), [0], ("gradient_x_input",)).schema.names
  assert [c for c in real if "." not in c] == [c for c in ours if "." not in c]
  assert {c for c in ours if "." in c} >= {c for c in real if "." in c}


# --- matplotlib API ----------------------------------------------------------------------------

def test_plots_return_figures():
  from matplotlib.figure import Figure
  from jaxplain.viz import plots
  data = _data()
  assert isinstance(plots.plot_curves(data.curves[0]), Figure)
  assert isinstance(plots.plot_leaderboard(data.leaderboard(resamples=50)), Figure)
  fig = plots.word_heatmap(["a", "<b>", "film"], [0.5, -1.0, 0.0], title="t")
  assert isinstance(fig, Figure) and plots.figure_svg(fig).lstrip().startswith("<?xml")
  assert isinstance(plots.plot_layer_tokens(np.random.rand(3, 8), ["a", "b", "c"]), Figure)
  assert isinstance(plots.plot_head_grid(np.eye(4)), Figure)


def test_viz_exports_the_matplotlib_api_and_plot_report():
  from matplotlib.figure import Figure
  import jaxplain.viz as viz
  for name in ("plot_heatmap", "word_heatmap", "plot_curves", "plot_leaderboard",
               "plot_layer_tokens", "plot_head_grid", "plot_report", "render_report",
               "load_sweep", "figure_svg"):
    assert callable(getattr(viz, name)), name
  figs = viz.plot_report(_data(), examples=2)
  assert list(figs)[:2] == ["leaderboard", "deletion_morf_curve"]
  assert [k for k in figs if k.startswith("heatmap/")] == [
      f"heatmap/ex{i}/{m}" for i in range(2) for m in METHODS]
  assert "diffmask/ex0" in figs and "heads/0" in figs
  assert all(isinstance(f, Figure) for f in figs.values())
  png = viz.figure_png(figs["heatmap/ex0/rollout"], dpi=50)
  assert png.startswith(b"\x89PNG")


def test_plot_heatmap_of_an_attribution():
  from matplotlib.figure import Figure
  from jaxplain.result import Attribution
  from jaxplain.viz import plots
  words = ["a", "charming", "film"]
  t = len(words) + 2
  att = Attribution(
      scores=np.array([[0, 0.1, 0.9, -0.3, 0]], np.float32), tokens=[["[CLS]", *words, "[SEP]"]],
      input_ids=np.arange(t, dtype=np.int32)[None], attention_mask=np.ones((1, t), np.int32),
      word_ids=np.array([[-1, 0, 1, 2, -1]], np.int32),
      offsets=np.array([[[0, 0], [0, 1], [2, 10], [11, 15], [0, 0]]], np.int32),
      sequence_ids=np.array([[-1, 0, 0, 0, -1]], np.int32), texts=["a charming film"],
      text_pairs=None, target=np.array([1], np.int32),
      probabilities=np.array([[0.2, 0.8]], np.float32), labels=("negative", "positive"),
      method="gradient_x_input", hyper={})
  assert isinstance(plots.plot_heatmap(att, 0), Figure)
  with pytest.raises(Exception, match="out of range"):
    plots.plot_heatmap(att, 3)


# --- in a real browser -------------------------------------------------------------------------

# Chromium and Playwright come from tests/viz/conftest.py (the `web` fixture); the end-to-end
# test on a real sweep of the tiny model is tests/viz/test_browser.py.

@pytest.fixture
def page(web, sweep_html, tmp_path):
  """The ``jaxplain report`` page of the tiny sweep, in Chromium."""
  pg = web.open(sweep_html, tmp_path / "report.html")
  yield pg
  pg.close()


@pytest.fixture
def data_page(web, page_html, tmp_path):
  """The page of the hand-built ReportData (timings, curves, DiffMask, heads), in Chromium."""
  pg = web.open(page_html, tmp_path / "report.html")
  yield pg
  pg.close()


def _assert_clean(pg):
  assert pg.evaluate("typeof window.__pwned") == "undefined"
  pg.assert_clean()  # tests/viz/conftest.py: no dialog, error, console error, network


def _column(pg, col: int) -> list[str]:
  return pg.eval_on_selector_all(
      "#jx-table tbody tr", f"rows => rows.map(r => r.cells[{col}].getAttribute('data-value'))")


def test_browser_loads_cleanly_and_runs_no_injected_script(page):
  _assert_clean(page)
  # The payloads show as text, escaped, in the heatmaps.
  assert PWNED in page.locator(".jx-row[data-index='0']").inner_text()
  assert "</script><script>window.__pwned=3</script>" in page.locator(
      ".jx-row[data-index='2']").inner_text()


def test_browser_figures_and_timing_sort(data_page):
  _assert_clean(data_page)
  images = data_page.locator("figure img")
  assert images.count() == 3
  for k in range(3):
    assert images.nth(k).evaluate("img => img.complete && img.naturalWidth > 0")
  data_page.locator("#jx-table thead th", has_text="s / example").click()
  assert _column(data_page, 0) == ["rollout", "gradient_x_input", "integrated_gradients"]


def test_browser_leaderboard_has_a_row_per_method_and_sorts(page):
  assert page.locator("#jx-table tbody tr").count() == len(METHODS)
  header = page.locator("#jx-table thead th", has_text="comprehensiveness")
  header.click()  # higher is better: best first
  order = [r for r in page.eval_on_selector_all("#jx-table tbody tr",
                                                "rows => rows.map(r => r.dataset.method)")]
  assert order == sorted(METHODS, key=lambda m: -COMP_MEANS[m])
  assert header.get_attribute("aria-sort") == "descending"
  header.click()
  values = [float(v) for v in _column(page, 1)]
  assert values == sorted(values)
  page.locator("#jx-table thead th", has_text="method").click()
  assert _column(page, 0) == sorted(METHODS)
  page.locator("#jx-table thead th", has_text="sufficiency").click()  # lower is better
  values = [float(v) for v in _column(page, 2)]
  assert values == sorted(values)


def test_browser_search_and_paging(page):
  visible = lambda: page.locator("#jx-list > .jx-row:visible").count()
  assert visible() == 10 and "page 1 of 3" in page.inner_text("#jx-page")
  page.click("#jx-next")
  page.click("#jx-next")
  assert visible() == 5 and page.is_disabled("#jx-next")
  page.fill("#jx-search", "utterly charming")
  assert visible() == 1 and "1 example" in page.inner_text("#jx-page")
  page.fill("#jx-search", "</script><script>window.__pwned=3")
  assert visible() == 1
  page.fill("#jx-search", "no such words")
  assert visible() == 0 and "no example matches" in page.inner_text("#jx-page")


def test_browser_heatmap_is_coloured(page):
  from PIL import Image
  shot = page.locator(".jx-row[data-index='0'] .jx-grid").screenshot()
  rgb = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"), np.int16)
  chroma = rgb.max(-1) - rgb.min(-1)
  assert (chroma > 60).sum() > 200, "no red/blue heatmap pixels in the screenshot"
  red = (rgb[..., 0] - rgb[..., 2] > 60).sum()
  blue = (rgb[..., 2] - rgb[..., 0] > 60).sum()
  assert red > 50 and blue > 50
