"""Corpus sweeps end to end on the tiny BERT classifier (``jaxplain.corpus``, ``jaxplain sweep``).

Every real sweep runs in a subprocess (``_sweep_child.py`` or the CLI), so each one gets its own
device count and ``jax.distributed`` state. To keep the file fast on a shared CPU, one module
fixture starts them all at once (imports and model loading overlap) and the tests read their
outputs:

* the 1-device reference sweep, and the same sweep on 8 simulated devices;
* the two processes of a ``jax.distributed`` run on localhost, and a sweep that is killed with
  SIGKILL after its first shard: these wait (after their imports) until the reference has filled
  the shared persistent compilation cache, so no 1-device program is compiled twice;
* ``jaxplain sweep`` (the CLI) rerun with the same plan over the killed sweep's directory: the
  resumption test and the CLI end-to-end test in one process.

All sweeps use one config: IG (4 steps), gradient x input and saliency with comprehensiveness
and sufficiency, batch 8, shards of 8 examples, max_length 16 (one compiled shape; rows longer
than 16 tokens are truncated and reported).
"""

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from jaxplain import corpus
from jaxplain.corpus.output import OutputError
from jaxplain.errors import InputError

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TINY = os.path.join(REPO, "tests", "fixtures", "tiny", "bert_seq_cls")
CSV = os.path.join(REPO, "tests", "fixtures", "sweep_corpus", "reviews.csv")
CHILD = os.path.join(HERE, "_sweep_child.py")
TIMEOUT = 600  # seconds for any one subprocess (the machine may be busy)
CLI_SCRIPT = """
import os, sys, time
import jaxplain.cli.sweep, jaxplain.corpus.sweep, jaxplain.models  # the slow imports first
go = sys.argv.pop(1)
while not os.path.exists(go):
  time.sleep(0.1)
from jaxplain.cli import main
main()
"""

DATA = {"source": CSV, "label_column": "label", "id_column": "review_id"}
CONFIG = {"data": DATA, "model": TINY,
          "methods": {"ig": {"steps": 4}, "gradient_x_input": {}, "saliency": {}},
          "metrics": ["comprehensiveness", "sufficiency"], "batch_size": 8, "shard_size": 8,
          "max_length": 16}
METHODS = ("integrated_gradients", "gradient_x_input", "saliency")

# What the fixture corpus holds (29 rows): four bad rows are skipped, two long ones truncated.
SKIPPED = {"r-empty": "empty text", "r-blank": "empty text",
           "r-bytes": "undecodable text", "r-label": "label 'maybe'"}
TRUNCATED = {"r010": "too long: 17 tokens > max_length 16",
             "r-long": "too long: 52 tokens > max_length 16"}
N_ROWS, N_ROWS_OUT = 29, 25

COLUMNS = ["index", "id", "text", "label", "prediction", "target", "probabilities", "truncated",
           "n_tokens", "tokens", "input_ids", "word_ids", "words"]
for _m in METHODS:
  COLUMNS += [f"scores.{_m}", f"word_scores.{_m}"]
  COLUMNS += [f"delta.{_m}"] if _m == "integrated_gradients" else []
  COLUMNS += [f"comprehensiveness.{_m}", f"sufficiency.{_m}", f"comprehensiveness_curve.{_m}",
              f"sufficiency_curve.{_m}"]


# --- running sweeps in subprocesses ------------------------------------------------------------


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


class _Child:
  """A subprocess whose stdout/stderr go to files (no pipe can fill up and block it)."""

  def __init__(self, name: str, args: list[str], env: dict[str, str], logs: str):
    self.name = name
    self.out_path = os.path.join(logs, f"{name}.out")
    self.err_path = os.path.join(logs, f"{name}.err")
    with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
      self.start = time.monotonic()
      self.proc = subprocess.Popen([sys.executable, *args], env=env, cwd=REPO, stdout=out,
                                   stderr=err)
    self.seconds = None

  def wait(self) -> int:
    try:
      rc = self.proc.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
      self.proc.kill()
      self.proc.wait()
      rc = -999
    if self.seconds is None:
      self.seconds = time.monotonic() - self.start
      print(f"{self.name}: exit {rc} after {self.seconds:.1f} s")  # shown with pytest -s
    return rc

  @property
  def stdout(self) -> str:
    with open(self.out_path) as f:
      return f.read()

  @property
  def stderr(self) -> str:
    with open(self.err_path) as f:
      return f.read()

  def summary(self) -> dict:
    """The JSON line ``_sweep_child.py`` prints at the end (after checking the exit code)."""
    rc = self.wait()
    assert rc == 0, f"{self.name} exited {rc}:\n{self.stderr[-4000:]}"
    return json.loads(self.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
  """Runs every subprocess sweep once; returns their output directories and handles."""
  started: list[_Child] = []
  try:
    yield _run_sweeps(tmp_path_factory.mktemp("sweeps"), started)
  finally:
    for c in started:  # a failed setup leaves none of its processes behind
      if c.proc.poll() is None:
        c.proc.kill()
        c.proc.wait()


def _run_sweeps(root, started: list) -> dict:
  logs = str(root / "logs")
  os.makedirs(logs)

  def env(devices: int = 1) -> dict[str, str]:
    e = dict(os.environ)
    e["XLA_FLAGS"] = (f"--xla_force_host_platform_device_count={devices}" if devices > 1
                      else "")
    e["JAX_PLATFORMS"] = "cpu"
    e["JAX_COMPILATION_CACHE_DIR"] = str(root / "jax-cache")
    e["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    e["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    e["JAX_DEFAULT_MATMUL_PRECISION"] = "float32"  # as _sweep_child.py sets it
    e["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, e.get("PYTHONPATH")) if p)
    e["TERM"] = "dumb"
    return e

  def child(name: str, extra: tuple[str, ...] = (), devices: int = 1,
            log: str | None = None) -> tuple[_Child, str]:
    out = str(root / name)
    cfg = str(root / f"{name}.json")
    with open(cfg, "w") as f:
      json.dump({**CONFIG, "output": out}, f)
    started.append(_Child(log or name, [CHILD, cfg, *extra], env(devices), logs))
    return started[-1], out

  runs: dict = {}
  ref, runs["ref_dir"] = child("ref")
  eight, runs["eight_dir"] = child("eight", devices=8)
  warm = os.path.join(runs["ref_dir"], "manifest.json")  # the cache holds the 1-device programs
  port = _free_port()
  pair = [child("two", ("--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                        "--process-id", str(p), "--wait-for", warm), log=f"two-{p}")[0]
          for p in range(2)]
  runs["two_dir"] = str(root / "two")
  killed, runs["killed_dir"] = child("killed", ("--pause-after-shard", "600", "--wait-for", warm))
  go = str(root / "cli-go")
  cli = _Child("cli", ["-c", CLI_SCRIPT, go, "sweep", CSV, "--output", runs["killed_dir"],
                       "--model", TINY, "--label-column", "label", "--id-column", "review_id",
                       "--method", "ig", "--param", "ig.steps=4", "--method",
                       "gradient_x_input", "--method", "saliency", "--metric",
                       "comprehensiveness", "--metric", "sufficiency", "--batch-size", "8",
                       "--shard-size", "8", "--max-length", "16", "--no-progress"], env(), logs)
  started.append(cli)
  runs["ref"] = ref.summary()
  manifest = os.path.join(runs["killed_dir"], "manifest-p00000-of-00001.json")
  deadline = time.monotonic() + TIMEOUT
  while time.monotonic() < deadline and killed.proc.poll() is None:
    try:
      with open(manifest) as f:
        if json.load(f)["shards"]:
          break
    except (OSError, ValueError, KeyError):
      pass
    time.sleep(0.1)
  killed.proc.send_signal(signal.SIGKILL)
  runs["killed_rc"] = killed.wait()
  runs["killed_files"] = sorted(os.listdir(runs["killed_dir"]))
  with open(manifest) as f:
    runs["killed_manifest"] = json.load(f)
  # What a process killed in the middle of writing shard 1 can leave behind: a temporary file
  # and (had it got as far as the rename, but not the manifest) a shard file the manifest does
  # not list. Both must be replaced, not trusted.
  with open(os.path.join(runs["killed_dir"], ".tmp-p00000-of-00001-part-p00000-of-00001-00001"
                         ".parquet.12345"), "wb") as f:
    f.write(b"PAR1 half a shard")
  with open(os.path.join(runs["killed_dir"], "part-p00000-of-00001-00001.parquet"), "wb") as f:
    f.write(b"PAR1 torn")
  with open(go, "w") as f:  # the CLI reruns the killed sweep
    f.write("go")
  runs["eight"] = eight.summary()
  runs["two"] = [p.summary() for p in pair]
  runs["cli"] = cli
  runs["cli_rc"] = cli.wait()
  return runs


def _errors(directory: str) -> list[dict]:
  out = []
  for path in sorted(glob.glob(os.path.join(directory, "errors-*.jsonl"))):
    with open(path) as f:
      out += [json.loads(line) for line in f]
  return sorted(out, key=lambda e: e["index"])


def _assert_same_rows(a: pd.DataFrame, b: pd.DataFrame, exact: bool = False) -> None:
  """Same examples, tokens and predictions; float columns equal (``exact``) or to 1e-5."""
  assert list(a.columns) == list(b.columns)
  assert a["index"].tolist() == b["index"].tolist()
  for col in a.columns:
    x, y = a[col].tolist(), b[col].tolist()
    floats = col.startswith(("scores.", "word_scores.", "delta.", "comprehensiveness",
                             "sufficiency", "probabilities"))
    if floats and not exact:
      for u, v in zip(x, y):
        np.testing.assert_allclose(np.asarray(u, np.float64), np.asarray(v, np.float64),
                                   rtol=1e-5, atol=1e-5, err_msg=col)
    else:
      same = [np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(x, y)]
      assert all(same), (col, [i for i, s in enumerate(same) if not s])


# --- output rows, schema, bad rows ---------------------------------------------------------------


def test_rows_and_schema_load_with_pandas_and_datasets(sweeps, tmp_path):
  out = sweeps["ref_dir"]
  assert sweeps["ref"] == {"examples": N_ROWS_OUT, "devices": 1, "shards_written": 4,
                           "shards_skipped": 0, "errors": len(SKIPPED) + len(TRUNCATED)}
  rows = corpus.read_sweep(out)
  assert list(rows.columns) == COLUMNS
  assert len(rows) == N_ROWS_OUT and rows["index"].is_monotonic_increasing
  assert not set(rows["id"]) & set(SKIPPED)
  for _, r in rows.iterrows():
    n = r["n_tokens"]
    assert len(r["tokens"]) == len(r["input_ids"]) == len(r["word_ids"]) == n
    assert r["tokens"][0] == "[CLS]" and r["tokens"][-1] == "[SEP]"
    assert abs(float(np.sum(r["probabilities"])) - 1) < 1e-5 and len(r["probabilities"]) == 3
    assert r["prediction"] == int(np.argmax(r["probabilities"])) == r["target"]
    for m in METHODS:
      scores, words = r[f"scores.{m}"], r[f"word_scores.{m}"]
      assert len(scores) == n and len(words) == len(r["words"])
      assert np.isfinite(scores).all() and np.isfinite(r[f"comprehensiveness.{m}"])
      assert len(r[f"comprehensiveness_curve.{m}"]) == 5  # the ERASER bins
      # word scores are sums over word pieces; special tokens belong to no word
      np.testing.assert_allclose(np.sum(words), np.sum(scores[r["word_ids"] >= 0]), atol=1e-5)
  first = rows.iloc[0]
  assert first["id"] == "r000" and first["text"] == "You movie so one all i most just!"
  assert first["words"].tolist() == ["You", "movie", "so", "one", "all", "i", "most", "just", "!"]
  assert first["label"] == 1  # "neutral", by name
  assert rows.set_index("id").loc["r-na", "text"] == "NA"  # a text, not a missing value
  assert rows["scores.saliency"].map(lambda s: bool((s >= 0).all())).all()  # a norm

  # pandas, straight from the shard files
  parts = sorted(glob.glob(os.path.join(out, "part-*.parquet")))
  assert len(parts) == 4
  direct = pd.read_parquet(parts)
  _assert_same_rows(direct.reset_index(drop=True), rows, exact=True)
  # Hugging Face datasets
  import datasets  # pylint: disable=g-import-not-at-top
  ds = datasets.load_dataset("parquet", data_files=os.path.join(out, "part-*.parquet"),
                             split="train", cache_dir=str(tmp_path / "hf"))
  assert ds.num_rows == N_ROWS_OUT and ds.column_names == COLUMNS
  assert ds.features["scores.integrated_gradients"].feature.dtype == "float32"
  assert ds.features["tokens"].feature.dtype == "string"
  assert ds.features["comprehensiveness.saliency"].dtype == "float32"
  assert sorted(ds["id"]) == sorted(rows["id"])

  with open(os.path.join(out, "manifest.json")) as f:
    manifest = json.load(f)
  assert manifest["complete"] and manifest["schema_version"] == corpus.SCHEMA_VERSION == 1
  assert manifest["rows"] == N_ROWS_OUT and manifest["errors"] == 6
  assert manifest["files"] == [os.path.basename(p) for p in parts]
  assert manifest["columns"] == COLUMNS
  assert manifest["curves"]["comprehensiveness_curve"] == [0.01, 0.05, 0.1, 0.2, 0.5]
  assert manifest["config"]["metrics"] == ["comprehensiveness", "sufficiency"]
  assert manifest["corpus"]["examples"] == N_ROWS
  assert 0 < manifest["padding"]["padding_waste"] < 1
  assert not glob.glob(os.path.join(out, ".tmp-*"))


def test_bad_rows_go_to_the_errors_file_and_the_sweep_goes_on(sweeps):
  rows, errors = corpus.read_sweep(sweeps["ref_dir"], errors=True)
  assert errors["id"].tolist() == [e["id"] for e in _errors(sweeps["ref_dir"])]
  by_id = {e["id"]: e for e in errors.to_dict("records")}
  assert set(by_id) == set(SKIPPED) | set(TRUNCATED)
  for i, reason in SKIPPED.items():
    assert by_id[i]["action"] == "skipped" and reason in by_id[i]["reason"], by_id[i]
  for i, reason in TRUNCATED.items():
    assert by_id[i]["action"] == "truncated" and by_id[i]["reason"] == reason
  r = rows.set_index("id")
  assert r.loc["r-long", "truncated"] and r.loc["r010", "truncated"]
  assert r.loc["r-long", "n_tokens"] == 16 and r.loc["r-long", "tokens"][-1] == "[SEP]"
  assert r["truncated"].sum() == 2
  assert r.loc["r022", "text"] == "the music was bad"  # the row after the bad ones


# --- devices, processes, resumption ------------------------------------------------------------


def test_eight_devices_give_the_rows_of_one(sweeps):
  assert sweeps["eight"]["devices"] == 8
  assert sweeps["eight"]["examples"] == N_ROWS_OUT
  _assert_same_rows(corpus.read_sweep(sweeps["eight_dir"]), corpus.read_sweep(sweeps["ref_dir"]))
  assert _errors(sweeps["eight_dir"]) == _errors(sweeps["ref_dir"])


def test_two_processes_write_the_union_of_the_rows(sweeps):
  p0, p1 = sweeps["two"]
  assert p0["examples"] + p1["examples"] == N_ROWS_OUT
  assert min(p0["examples"], p1["examples"]) > 0  # each process did its own slice
  out = sweeps["two_dir"]
  names = sorted(os.listdir(out))
  assert "manifest-p00000-of-00002.json" in names and "manifest-p00001-of-00002.json" in names
  assert any(n.startswith("part-p00001-of-00002-") for n in names)
  with open(os.path.join(out, "manifest.json")) as f:
    merged = json.load(f)
  assert merged["process_count"] == 2 and merged["rows"] == N_ROWS_OUT
  _assert_same_rows(corpus.read_sweep(out), corpus.read_sweep(sweeps["ref_dir"]))
  assert _errors(out) == _errors(sweeps["ref_dir"])


def test_killed_sweep_resumes_to_the_rows_of_an_uninterrupted_one(sweeps):
  assert sweeps["killed_rc"] == -signal.SIGKILL
  # killed after exactly one shard: no merged manifest yet
  assert list(sweeps["killed_manifest"]["shards"]) == ["0"]
  assert not sweeps["killed_manifest"]["complete"]
  assert "manifest.json" not in sweeps["killed_files"]
  cli = sweeps["cli"]
  assert sweeps["cli_rc"] == 0, cli.stderr[-3000:]
  assert "shards written 3, already done 1" in cli.stdout, cli.stdout
  out = sweeps["killed_dir"]
  rows = corpus.read_sweep(out)
  _assert_same_rows(rows, corpus.read_sweep(sweeps["ref_dir"]), exact=True)
  assert rows["id"].is_unique
  assert _errors(out) == _errors(sweeps["ref_dir"])
  assert not glob.glob(os.path.join(out, ".tmp-*"))
  assert len(glob.glob(os.path.join(out, "part-*.parquet"))) == 4


def test_cli_sweep_end_to_end(sweeps):
  """The CLI run above: the flags built the very config of the Python API (else it would have
  been refused), it reported progress and a summary, and finished the sweep."""
  cli = sweeps["cli"]
  assert sweeps["cli_rc"] == 0, cli.stderr[-3000:]
  first = sweeps["killed_manifest"]["shards"]["0"]["rows"]
  assert cli.stdout.startswith(f"swept {N_ROWS_OUT - first} examples"), cli.stdout
  assert "padding waste" in cli.stdout and "examples/s" in cli.stdout
  assert "resuming" in cli.stderr and "shard 4/4" in cli.stderr  # plain lines, not a terminal
  with open(os.path.join(sweeps["killed_dir"], "manifest.json")) as f:
    cli_manifest = json.load(f)
  with open(os.path.join(sweeps["ref_dir"], "manifest.json")) as f:
    ref_manifest = json.load(f)
  assert cli_manifest["config_hash"] == ref_manifest["config_hash"]
  assert cli_manifest["rows"] == N_ROWS_OUT and cli_manifest["complete"]


# --- refusals and clear errors (no model is loaded: they fail first) ---------------------------


def _config(**changes):
  return corpus.make_config(**{**CONFIG, **changes})


def _cli(*args):
  import jaxplain.cli.sweep  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  from typer.testing import CliRunner  # pylint: disable=g-import-not-at-top
  from jaxplain.cli import app  # pylint: disable=g-import-not-at-top
  return CliRunner().invoke(app, ["sweep", *args, "--no-cache", "--no-progress"])


def _assert_one_line_error(result, *fragments):
  assert result.exit_code == 2, result.output
  err = result.stderr.strip()
  assert "\n" not in err and "Traceback" not in result.output, err
  assert err.startswith("jaxplain: error: "), err
  for fragment in fragments:
    assert fragment in err, err


def test_changed_config_is_refused(sweeps, tmp_path):
  out = str(tmp_path / "copy")
  shutil.copytree(sweeps["ref_dir"], out)
  before = {n: os.path.getmtime(os.path.join(out, n)) for n in os.listdir(out)}
  changed = _config(output=out, methods={"ig": {"steps": 8}, "gradient_x_input": {},
                                         "saliency": {}})
  with pytest.raises(OutputError, match="different config") as e:
    corpus.sweep(changed)
  assert "methods" in str(e.value) and "new --output" in str(e.value)
  with pytest.raises(OutputError, match=r"batch_size \(8 -> 16\)"):
    corpus.sweep(_config(output=out, batch_size=16))
  result = _cli(CSV, "--output", out, "--model", TINY, "--label-column", "label",
                "--id-column", "review_id", "--method", "saliency")
  _assert_one_line_error(result, "different config", "methods")
  assert {n: os.path.getmtime(os.path.join(out, n)) for n in os.listdir(out)} == before


def test_unwritable_output_directory_is_a_clear_error(tmp_path):
  blocker = tmp_path / "a-file"
  blocker.write_text("not a directory")
  with pytest.raises(OutputError, match="cannot create the output directory"):
    corpus.sweep(_config(output=str(blocker / "out")))
  with pytest.raises(OutputError, match="is not a directory"):
    corpus.sweep(_config(output=str(blocker)))
  result = _cli(CSV, "--output", str(blocker / "out"), "--model", TINY)
  _assert_one_line_error(result, "cannot create the output directory", "--output")
  if os.geteuid() != 0:  # root writes anywhere
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
      with pytest.raises(OutputError, match="is not writable"):
        corpus.sweep(_config(output=str(locked)))
    finally:
      locked.chmod(0o700)


def test_cli_flag_errors_are_one_line(tmp_path):
  out = str(tmp_path / "out")
  _assert_one_line_error(_cli(CSV, "--output", out, "--method", "ig", "--param", "steps=3"),
                         "NAME.KEY=VALUE")
  _assert_one_line_error(_cli(CSV, "--output", out, "--method", "saliency", "--param",
                              "ig.steps=3"), "not among the methods")
  _assert_one_line_error(_cli(CSV, "--output", out, "--method", "nope"), "unknown method")
  _assert_one_line_error(_cli(CSV, "--output", out, "--metric", "nope"), "unknown metric")
  _assert_one_line_error(_cli(str(tmp_path / "missing.csv"), "--output", out),
                         "no data file")
  _assert_one_line_error(_cli(CSV, "--output", out, "--text-column", "body"),
                         "has no column(s) body")
  assert not os.path.exists(out) or not os.listdir(out)


# --- pure pieces (no compilation) ----------------------------------------------------------------


def test_toml_config_and_flags_build_the_same_plan(tmp_path):
  toml = tmp_path / "sweep.toml"
  toml.write_text(f"""
model = "{TINY}"
output = "{tmp_path / 'out'}"
batch_size = 8
shard_size = 8
max_length = 16
metrics = ["comprehensiveness", "sufficiency"]

[data]
source = "{CSV}"
label_column = "label"
id_column = "review_id"

[methods.ig]
steps = 4
[methods.gradient_x_input]
[methods.saliency]
""")
  from_file = corpus.read_config(toml)
  assert from_file.config_hash() == _config(output="elsewhere").config_hash()
  assert from_file.method_names == METHODS
  assert corpus.read_config(toml, batch_size=16).batch_size == 16
  with pytest.raises(InputError, match="unknown metric"):
    corpus.read_config(toml, metrics=["accuracy"])
  with pytest.raises(InputError, match="not valid TOML"):
    bad = tmp_path / "bad.toml"
    bad.write_text("model = ")
    corpus.read_config(bad)


def test_bucket_option_in_toml_flags_and_fingerprint(tmp_path):
  base = _config(output="o")
  assert base.buckets == "default" and "buckets" not in base.fingerprint()  # old hashes hold
  toml = tmp_path / "sweep.toml"
  for value, want in (('"fine"', "fine"), ("[8, 12, 16]", (8, 12, 16))):
    toml.write_text(f'output = "o"\nbuckets = {value}\n[data]\nsource = "{CSV}"\n')
    assert corpus.read_config(toml).buckets == want
  fine = _config(output="o", buckets="fine")
  assert corpus.plan.diff_fingerprints(base.fingerprint(), fine.fingerprint()) == [
      'buckets (null -> "fine")']
  with pytest.raises(InputError, match="unknown bucket preset 'tiny'"):
    _config(output="o", buckets="tiny")
  with pytest.raises(InputError, match="increasing positive token counts"):
    _config(output="o", buckets=(16, 8))
  out = str(tmp_path / "out")
  _assert_one_line_error(_cli(CSV, "--output", out, "--buckets", "16,x"), "--buckets",
                         "preset")
  _assert_one_line_error(_cli(CSV, "--output", out, "--buckets", "coarse"),
                         "unknown bucket preset")
  assert not os.path.exists(out) or not os.listdir(out)


def test_finer_buckets_pad_less_and_give_the_same_scores(tmp_path):
  """In process, one cheap method: the same rows with other padded lengths."""
  runs = {}
  for name, buckets in (("default", "default"), ("fine", (8, 12, 16))):
    out = str(tmp_path / name)
    corpus.sweep(_config(output=out, buckets=buckets, methods={"gradient_x_input": {}},
                         metrics=[], batch_size=4, shard_size=32), progress=False)
    with open(os.path.join(out, "manifest.json")) as f:
      runs[name] = (corpus.read_sweep(out), json.load(f))
  (coarse, m_coarse), (fine, m_fine) = runs["default"], runs["fine"]
  assert m_fine["config"]["buckets"] == [8, 12, 16] and "buckets" not in m_coarse["config"]
  assert m_fine["padding"]["real_tokens"] == m_coarse["padding"]["real_tokens"]
  assert m_fine["padding"]["padded_slots"] < m_coarse["padding"]["padded_slots"]
  assert list(fine["id"]) == list(coarse["id"])
  for a, b in zip(fine["scores.gradient_x_input"], coarse["scores.gradient_x_input"]):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_bucketing_sorts_by_length_and_reports_padding():
  lengths = [5, 30, 6, 31, 7, 29, 8, 28]
  plans = corpus.plan_batches(lengths, 4, 64, buckets=(16, 32, 64))
  assert [p.rows for p in plans] == [(0, 2, 4, 6), (7, 5, 1, 3)]
  assert [p.length for p in plans] == [16, 32]
  stats = corpus.PaddingStats()
  stats.add(lengths, plans, 4, 64, buckets=(16, 32, 64))
  assert stats.real == sum(lengths)
  assert stats.bucketed == 4 * 16 + 4 * 32
  assert stats.file_order == 2 * 4 * 32  # every file-order batch holds a long input
  assert stats.fixed == 2 * 4 * 64
  assert stats.waste < stats.waste_file_order < stats.waste_fixed


def test_process_slices_cover_the_corpus_once():
  for n, count in ((29, 2), (10, 3), (3, 4)):
    for slicing in ("round_robin", "block"):
      parts = [corpus.process_slice(n, p, count, slicing) for p in range(count)]
      assert sorted(np.concatenate(parts).tolist()) == list(range(n))


def test_jsonl_bad_lines_and_bytes_become_bad_rows(tmp_path):
  from jaxplain.corpus.read import check_text  # pylint: disable=g-import-not-at-top
  path = tmp_path / "x.jsonl"
  path.write_bytes(b'{"text": "a fine film", "label": 1}\n{"text": "bad \xff bytes", "label": 0}\n'
                   b'\n{not json\n{"text": null, "label": 1}\n[1, 2]\n')
  c = corpus.read_corpus(corpus.DataSpec(str(path), label_column="label"))
  assert len(c) == 5 and c.ids == ["0", "1", "2", "3", "4"]
  reasons = [check_text(t)[1] for t in c.texts]
  assert reasons[0] is None
  assert reasons[1].startswith("undecodable text")
  assert reasons[2].startswith("line 4 is not valid JSON")
  assert reasons[3] == "empty text"
  assert reasons[4] == "line 6 is not a JSON object"
