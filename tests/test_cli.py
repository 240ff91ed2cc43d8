"""``jaxplain explain`` end to end on the tiny BERT classifier (one compiled shape, bucket 16).

Most tests go through typer's ``CliRunner`` in this process; two run the real
``python -m jaxplain`` in a subprocess to check the exit code and stderr a shell sees.
"""

import html
import json
import os
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from jaxplain.cli import _common, app

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(REPO, "tests", "fixtures", "tiny", "bert_seq_cls")
LABELS = ("negative", "neutral", "positive")
SCRIPT = "the <script>alert(1)</script> film"
LONG = "the film " * 40  # 82 tokens; the tiny model allows 40


@pytest.fixture(scope="module")
def tiny_model():
  return _common.load(TINY)


@pytest.fixture
def runner(tiny_model, monkeypatch):
  """A CliRunner whose ``--model TINY`` is loaded once: its compiled programs are reused.

  Loading the model afresh per command would make a new ``forward`` and recompile; the real
  loading path is covered by the subprocess tests and the missing-directory test.
  """
  real = _common.load
  monkeypatch.setattr(_common, "load", lambda m: tiny_model if m == TINY else real(m))
  return CliRunner()


def explain(runner, *args, input=None):
  return runner.invoke(app, ["explain", *args, "--model", TINY, "--no-cache"], input=input)


def assert_one_line_error(result, starts):
  assert result.exit_code == 2, result.output
  err = result.stderr.strip()
  assert "\n" not in err and "Traceback" not in result.output
  assert err.startswith("jaxplain: error: " + starts), err


def test_prints_label_and_word_table(runner):
  result = explain(runner, "a good film")
  assert result.exit_code == 0, result.output
  out = result.stdout
  assert any(f"{label} (p = 0." in out for label in LABELS)
  assert "explaining:" in out and "gradient_x_input" in out
  for word in ("a", "good", "film"):
    assert f" {word} " in out


def test_json_output(runner):
  result = explain(runner, "a good film", "the movie was bad", "--json", "--target", "positive",
                   "--batch-size", "1")  # keeps the one compiled shape [1, 16]
  assert result.exit_code == 0, result.output
  doc = json.loads(result.stdout)
  assert doc["method"] == "gradient_x_input" and len(doc["examples"]) == 2
  ex = doc["examples"][0]
  assert ex["words"] == ["a", "good", "film"] and len(ex["word_scores"]) == 3
  assert ex["tokens"][0] == "[CLS]" and len(ex["token_scores"]) == len(ex["tokens"])
  assert ex["label"] in LABELS and ex["target"] == 2 and ex["target_label"] == "positive"
  assert sum(ex["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
  assert ex["probability"] == max(ex["probabilities"].values())


def test_method_and_params_pass_through(runner):
  result = explain(runner, "a good film", "--method", "Saliency", "--param", "norm=l1", "--json",
                   "-t", "0")
  assert result.exit_code == 0, result.output
  doc = json.loads(result.stdout)
  assert doc["method"] == "saliency" and doc["hyper"] == {"norm": "l1"}
  assert doc["examples"][0]["target"] == 0
  assert min(doc["examples"][0]["token_scores"]) >= 0  # l1 saliency is unsigned


def test_json_of_a_layer_method_has_every_layer(runner, tiny_model):
  result = explain(runner, "a good film", "--method", "lig", "--steps", "4", "--json")
  assert result.exit_code == 0, result.output
  ex = json.loads(result.stdout)["examples"][0]
  rows, gaps = ex["layer_token_scores"], ex["layer_convergence_deltas"]
  assert len(rows) == len(gaps) == tiny_model.config.num_layers + 1
  assert all(len(r) == len(ex["tokens"]) for r in rows)
  assert rows[0] == ex["token_scores"] and gaps[0] == ex["convergence_delta"]


def test_pack_gives_the_same_scores(runner):
  texts = ("a good film", "the movie was bad", "fine")
  plain = explain(runner, *texts, "--json", "-t", "2", "--no-pack")
  packed = explain(runner, *texts, "--json", "-t", "2", "--pack")
  assert plain.exit_code == 0 and packed.exit_code == 0, packed.output
  for a, b in zip(json.loads(plain.stdout)["examples"], json.loads(packed.stdout)["examples"]):
    assert a["tokens"] == b["tokens"]
    assert b["token_scores"] == pytest.approx(a["token_scores"], abs=2e-5)


def visible_texts(page):
  """The texts a browser shows in each example line (tags removed, entities kept)."""
  return [re.sub(r"<[^>]+>", "", t) for t in re.findall(r'<div class="jx-text">(.*?)</div>', page)]


def test_stdin_and_html(runner, tmp_path):
  out = tmp_path / "out.html"
  result = explain(runner, "-", "--html", str(out), "--batch-size", "1",
                   input=f"{SCRIPT}\n\na good film\n")
  assert result.exit_code == 0, result.output
  page = out.read_text()
  assert page.startswith("<!DOCTYPE html>") and "<script" not in page
  assert visible_texts(page) == [html.escape(SCRIPT), "a good film"]
  assert [p.name for p in tmp_path.iterdir()] == ["out.html"]  # no temp file left behind
  umask = os.umask(0)
  os.umask(umask)
  assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() makes it, not owner-only


def test_truncation_is_a_one_line_warning(runner):
  result = explain(runner, LONG, "--max-length", "16")
  assert result.exit_code == 0, result.output
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("jaxplain: warning: 1 input(s) longer")


@pytest.mark.parametrize("args, starts", [
    (["a film", "--method", "nope"], "unknown method 'nope'; valid methods: "),
    (["   "], "text 0 is empty"),
    ([LONG, "--no-truncate"], "1 input(s) longer than the 40-token limit"),
    (["a film", "--target", "happy"], "unknown target 'happy'"),
    (["a film", "--aggregate", "median"], "unknown --aggregate 'median'"),
    (["a film", "--target", "7"], "target class 7 is out of range"),
    (["a film", "--param", "steps"], "--param 'steps' is not key=value"),
    (["a film", "--param", "bogus=1"], "method 'gradient_x_input' has no hyperparameter"),
    (["a film", "--steps", "8"], "method 'gradient_x_input' has no hyperparameter 'steps'"),
    (["a film", "--method", "ig", "--steps", "0"], "steps=0 is too few"),
    (["a film", "--param", "target=1"], "--param target=... is not a method hyperparameter"),
    (["a film", "--html", "/nonexistent/dir/x.html"], "cannot write"),
    (["a film", "--method", "lafa", "--pack"], "method 'lafa' does not take packed"),
])
def test_user_errors_are_one_line(runner, args, starts):
  assert_one_line_error(explain(runner, *args), starts)


def test_missing_model_dir(runner, tmp_path):
  result = runner.invoke(app, ["explain", "a film", "--model", str(tmp_path / "nope"), "--no-cache"])
  assert_one_line_error(result, "no model directory at")


def test_ctrl_c_exits_130(runner, monkeypatch):
  def interrupted(model):
    raise KeyboardInterrupt
  monkeypatch.setattr(_common, "load", interrupted)
  result = explain(runner, "a film")
  assert result.exit_code == 130 and "Traceback" not in result.output


def test_param_parsing():
  assert _common.parse_params(["steps=32", "stdev=0.1", "kind=mean", "flag=true", "x=none"]) == {
      "steps": 32, "stdev": 0.1, "kind": "mean", "flag": True, "x": None}
  assert _common.parse_target("POSITIVE", LABELS) == 2 and _common.parse_target("1", LABELS) == 1


def _run(*args, cache):
  env = dict(os.environ, XDG_CACHE_HOME=str(cache), PYTHONPATH=REPO)
  return subprocess.run([sys.executable, "-m", "jaxplain", *args], capture_output=True,
                        text=True, env=env, cwd=REPO, timeout=300)


def test_subprocess_explain(tmp_path):
  out = tmp_path / "x.html"
  proc = _run("explain", SCRIPT, "--model", TINY, "--json", "--html", str(out),
              cache=tmp_path / "cache")
  assert proc.returncode == 0, proc.stderr
  assert json.loads(proc.stdout)["examples"][0]["text"] == SCRIPT
  assert visible_texts(out.read_text()) == [html.escape(SCRIPT)]
  assert os.listdir(tmp_path / "cache" / "jaxplain" / "jax")  # the persistent cache was filled


def test_unusable_cache_directory_warns_and_goes_on(tmp_path):
  blocker = tmp_path / "a_file"  # XDG_CACHE_HOME is a file: no cache directory under it
  blocker.write_text("")
  proc = _run("explain", "a film", "--model", TINY, "--json", cache=blocker)
  assert proc.returncode == 0, proc.stderr
  assert "cannot create the compilation cache directory" in proc.stderr
  assert "running without it" in proc.stderr and "Traceback" not in proc.stderr
  assert json.loads(proc.stdout)["examples"][0]["text"] == "a film"


def test_subprocess_error_is_one_line(tmp_path):
  proc = _run("explain", "a film", "--model", TINY, "--method", "nope", cache=tmp_path)
  assert proc.returncode == 2
  assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
  assert proc.stderr.startswith("jaxplain: error: unknown method 'nope'")


@pytest.mark.parametrize("command, shown", [
    (["explain"], "[default: the predicted class]"),
    (["report"], "[default: SWEEP_DIR/report.html]"),
    (["explain"], "Chefer's relprop (gae, mask_lrp, partial_lrp, full_lrp), not the seed methods"),
])
def test_help_keeps_bracketed_text(command, shown):
  """Help texts are plain text: "[default: ...]" is not read as (and dropped for) markup."""
  result = CliRunner().invoke(app, [*command, "--help"], terminal_width=100)
  assert result.exit_code == 0 and shown in " ".join(result.stdout.split())
