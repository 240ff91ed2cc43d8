"""End to end in a real browser: a sweep of the tiny model over hostile texts, ``jaxplain report``,
and the page in headless Chromium.

The sweep (``jaxplain.corpus.sweep`` on ``tests/fixtures/tiny/bert_seq_cls``) explains texts that
carry ``<script>alert(1)</script>``, ``<img src=x onerror=alert(1)>`` and friends with three
methods and two metrics; a head-mask file and the JSON of ``jaxplain diffmask explain --json``
sit beside its shards. ``jaxplain report`` renders the page, and Chromium (Debian's package,
driven by Playwright; see ``conftest.py``) opens it from disk: it loads with no console error,
no dialog (the payloads' ``alert``) and no request off the disk, the leaderboard has a row per
method and sorts when a header is clicked, and the heatmaps show red and blue pixels in a
screenshot. Where Playwright is missing but Chromium is not, ``chromium --headless --screenshot``
/ ``--dump-dom`` check what they can (the script ran, nothing injected, colours) and only the
interactive test skips.
"""

import json
import os
import re
import subprocess

import numpy as np
import pytest

TINY = os.path.join(os.path.dirname(__file__), "..", "fixtures", "tiny", "bert_seq_cls")
SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
TEXTS = [f"{SCRIPT} an utterly charming film", f"{IMG} a dull , lifeless mess",
         "a film & its \"quotes\" </div></body> <!-- end", "an odd film", "a film",
         f"<svg onload=alert(1)> a charming , odd mess", "a dull film", "lifeless film"]
METHODS = {"gradient_x_input": {}, "integrated_gradients": {"steps": 2}, "rollout": {}}


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
  """A real sweep of the tiny model, plus head masks and DiffMask keep probabilities."""
  import pandas as pd
  import jaxplain
  from jaxplain.corpus import make_config, sweep
  root = tmp_path_factory.mktemp("browser-sweep")
  data = root / "data.csv"
  pd.DataFrame({"text": TEXTS, "label": [i % 3 for i in range(len(TEXTS))]}).to_csv(
      data, index=False)
  model = jaxplain.load_model(TINY)
  out = root / "out"
  config = make_config(data={"source": str(data), "label_column": "label"}, output=str(out),
                       methods=METHODS, metrics=["comprehensiveness", "deletion"],
                       batch_size=len(TEXTS), max_length=32)  # one batch, one compile
  sweep(config, model=model, progress=False, log=lambda line: None)
  layers, heads = model.config.num_layers, model.config.num_heads
  _write_head_masks(out / "head_masks.json", layers, heads)
  _write_diffmask(out / "diffmask.json", model, TEXTS[:2])
  return out


def _write_head_masks(path, layers: int, heads: int) -> None:
  from jaxplain.attribution.heads import HeadMasks
  grid = np.zeros((layers, heads), np.float32)
  grid[-1, 0] = 1
  masks = HeadMasks(synt=grid, pos=grid * 0, synt_pos=grid, positional_share=grid,
                    positional_offset=grid.astype(np.int32), accuracy={"nsubj": grid},
                    baseline={"nsubj": 0.5}, baseline_offset={"nsubj": 1},
                    count={"nsubj": 3}, tokens=10, texts=2, settings={})
  path.write_text(masks.to_json())


def _write_diffmask(path, model, texts) -> None:
  """The layout of ``jaxplain diffmask explain --json`` (keep: [tokens, layers + 2])."""
  batch = model.encode(texts)
  tokens = model.tokens(batch)
  rng = np.random.default_rng(0)
  k = model.config.num_layers + 2
  examples = []
  for i, text in enumerate(texts):
    n = len(tokens[i])
    keep = np.sort(rng.random((n, k)), axis=1)[:, ::-1]  # keep falls with depth (input gates)
    examples.append({"text": text, "label": "positive", "probability": 0.6, "tokens": tokens[i],
                     "indices": ["E"] + [str(j) for j in range(1, k)],
                     "keep": keep.round(6).tolist(), "survived": keep.sum(1).tolist()})
  path.write_text(json.dumps({"model": "tiny", "gates": "gates", "variant": "input",
                              "examples": examples}))


@pytest.fixture(scope="module")
def report_html(sweep_dir, tmp_path_factory) -> str:
  from typer.testing import CliRunner
  from jaxplain.cli import app
  out = tmp_path_factory.mktemp("browser-report") / "report.html"
  result = CliRunner().invoke(app, ["report", str(sweep_dir), "-o", str(out),
                                    "--resamples", "100"])
  assert result.exit_code == 0, result.output
  assert "warning" not in result.stderr, result.stderr  # a complete sweep: nothing missing
  return out.read_text(encoding="utf-8")


def test_page_is_self_contained_and_escaped(report_html):
  """Static checks of what Chromium opens below (they need no browser)."""
  assert not re.search(r"https?://(?!www\.w3\.org/)", report_html), "a URL in the page"
  assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", report_html)
  assert len(re.findall(r"<script\b", report_html)) == 2  # the page's script + JSON index
  assert SCRIPT not in report_html and IMG not in report_html and "<svg onload" not in report_html
  assert "&lt;script&gt;alert(1)&lt;/script&gt;" in report_html
  assert "&lt;img src=x onerror=alert(1)&gt;" in report_html
  rows = re.findall(r'<tr data-method="([^"]+)">', report_html)
  assert rows == list(METHODS)
  for section in ("jx-leaderboard", "jx-curves", "jx-examples", "jx-diffmask", "jx-heads"):
    assert f'id="{section}"' in report_html, section


@pytest.fixture(scope="module")
def page(web, report_html, tmp_path_factory):
  pg = web.open(report_html, tmp_path_factory.mktemp("browser-page") / "report.html")
  yield pg
  pg.close()


def test_loads_without_errors_and_runs_no_injected_script(page):
  page.assert_clean()  # no alert() dialog, no error, no console error, no network
  assert page.evaluate("document.querySelectorAll('img[onerror], svg[onload]').length") == 0
  text = page.locator("#jx-list").inner_text()
  assert SCRIPT in text and IMG in text  # shown as text, as written
  page.fill("#jx-search", SCRIPT)  # the search index holds the raw text too
  assert page.locator("#jx-list > .jx-row:visible").count() == 1
  page.fill("#jx-search", "")
  page.assert_clean()
  # The page's own script ran: it filled the pager.
  assert page.inner_text("#jx-page").startswith("page 1 of 1")


def test_leaderboard_has_a_row_per_method_and_sorts_on_click(page):
  rows = lambda: page.eval_on_selector_all("#jx-table tbody tr",
                                           "rs => rs.map(r => r.dataset.method)")
  assert sorted(rows()) == sorted(METHODS)
  header = page.locator("#jx-table thead th", has_text="comprehensiveness")
  col = page.eval_on_selector_all("#jx-table thead th", "hs => hs.map(h => h.textContent)")
  k = next(i for i, h in enumerate(col) if h.startswith("comprehensiveness"))
  values = lambda: [float(v) for v in page.eval_on_selector_all(
      "#jx-table tbody tr", f"rs => rs.map(r => r.cells[{k}].getAttribute('data-value'))")]
  header.click()  # higher is better: best first
  assert header.get_attribute("aria-sort") == "descending"
  assert values() == sorted(values(), reverse=True)
  header.click()
  assert header.get_attribute("aria-sort") == "ascending"
  assert values() == sorted(values())
  page.locator("#jx-table thead th", has_text="method").click()
  assert rows() == sorted(METHODS)


def test_heatmaps_and_figures_are_visible(page, web):
  grid = page.locator(".jx-row[data-index='0'] .jx-grid")
  assert grid.is_visible()
  red, blue = web.heatmap_pixels(grid.screenshot())
  assert red > 50 and blue > 50, (red, blue)
  # The curves, the two DiffMask maps and the head grid: every image decoded.
  images = page.locator("figure img")
  assert images.count() == len(_figure_captions(page)) >= 4
  for k in range(images.count()):
    assert images.nth(k).evaluate("img => img.complete && img.naturalWidth > 0"), k
  assert page.locator("#jx-diffmask figure").count() == 2
  assert page.locator("#jx-heads figure").count() == 1


def _figure_captions(page) -> list[str]:
  return page.eval_on_selector_all("figure figcaption", "cs => cs.map(c => c.textContent)")


def test_plain_chromium_screenshot_and_dom(chromium_cli, report_html, tmp_path):
  """``chromium --headless --dump-dom`` / ``--screenshot`` (the path without Playwright)."""
  from PIL import Image
  chromium, args = chromium_cli
  path = tmp_path / "report.html"
  path.write_text(report_html, encoding="utf-8")
  base = [chromium, "--headless", *args, f"--user-data-dir={tmp_path / 'profile'}",
          "--window-size=1280,2400", "--hide-scrollbars", "--virtual-time-budget=3000"]
  dom = subprocess.run([*base, "--dump-dom", path.as_uri()], capture_output=True, text=True,
                       timeout=60, check=True).stdout
  assert re.search(r'id="jx-page"[^>]*>page 1 of 1', dom), "the page's script did not run"
  # An element with an event-handler attribute (attribute values are serialised in quotes).
  injected = r'<(img|svg)\b(\s+[\w-]+(="[^"]*")?)*\s+on(error|load)='
  assert not re.search(injected, dom), "an injected element"
  assert re.search(injected, '<img alt="a" src="x" onerror="alert(1)">')  # the check works
  assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom  # the payload, as text
  shot = tmp_path / "shot.png"
  subprocess.run([*base, f"--screenshot={shot}", path.as_uri()], capture_output=True,
                 timeout=60, check=True)
  with open(shot, "rb") as f:
    red, blue = _pixels(f.read())
  assert red > 200 and blue > 200, (red, blue)
  assert Image.open(shot).size == (1280, 2400)


def _pixels(png: bytes) -> tuple[int, int]:
  import io
  from PIL import Image
  rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), np.int16)
  red = int(((rgb[..., 0] - rgb[..., 2] > 60) & (rgb[..., 0] - rgb[..., 1] > 60)).sum())
  blue = int(((rgb[..., 2] - rgb[..., 0] > 60) & (rgb[..., 2] - rgb[..., 1] > 20)).sum())
  return red, blue
