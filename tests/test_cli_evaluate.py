"""End to end: `jaxplain evaluate` on a tiny checkpoint and a small csv."""

import json
import os

from typer.testing import CliRunner

from jaxplain.cli import app

TINY = os.path.join(os.path.dirname(__file__), "fixtures", "tiny", "bert_seq_cls")
ROWS = [("the movie was good .", "positive"), ("a bad film , but the actors were great .",
                                                "negative"),
        ("the plot was boring and the music was bad .", "negative"),
        ("i love this film , the best story .", "positive"),
        ("it was fun and very funny .", "positive"), ("the worst movie i have seen .", "negative")]


def test_evaluate_writes_one_table(tmp_path):
  data = tmp_path / "data.csv"
  data.write_text("text,label\n" + "\n".join(f'"{t}",{l}' for t, l in ROWS) + "\n")
  out = tmp_path / "eval"
  result = CliRunner().invoke(app, [
      "evaluate", str(data), "--model", TINY, "-m", "gradient_x_input", "-m", "saliency",
      "--metric", "comprehensiveness", "--metric", "sufficiency", "-o", str(out),
      "--batch-size", "8", "--no-cache"])
  assert result.exit_code == 0, result.output
  table = json.loads((out / "metrics.json").read_text())
  text = json.dumps(table)
  for name in ("gradient_x_input", "saliency", "comprehensiveness", "sufficiency"):
    assert name in text
  assert (out / "metrics.md").exists() and (out / "metrics.csv").exists()


def test_evaluate_bad_input_is_one_line(tmp_path):
  result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "missing.csv"), "--model", TINY])
  assert result.exit_code == 2
  assert "no data file" in result.output and "Traceback" not in result.output
  data = tmp_path / "rt.csv"
  data.write_text("category,text\nfresh,a fine film\n")
  result = CliRunner().invoke(app, ["evaluate", str(data), "--model", TINY, "--no-cache"])
  assert result.exit_code == 2 and "Traceback" not in result.output
  assert "no column(s) label; it has category, text" in result.output
  assert "--label-column" in result.output
  data = tmp_path / "d.csv"
  data.write_text("text,label\nthe movie was good .,positive\n")
  result = CliRunner().invoke(app, ["evaluate", str(data), "--model", TINY, "-m", "nope",
                                    "--no-cache"])
  assert result.exit_code == 2 and "unknown method 'nope'" in result.output
