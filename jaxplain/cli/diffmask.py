"""``jaxplain diffmask train | explain``: train DiffMask gates for a model, then read them.

    jaxplain diffmask train ../data/rotten_tomatoes_corpus_full.csv.bz2 --out runs/dm-input
    jaxplain diffmask train texts.txt --variant hidden --steps 3000 --out runs/dm-hidden
    jaxplain diffmask explain "a gripping, funny film" --gates runs/dm-input --plots figs/

``train`` fits the gate probes (De Cao et al., 2020) on a data set: the Rotten Tomatoes corpus
(its training split by movie; the validation split selects the gates), any CSV/TSV with a
``text`` column, or a text file with one text per line (``-`` reads stdin). Labels are not
needed: DiffMask explains the model's own prediction. Training is checkpointed every
``--checkpoint-every`` steps; running the same command again (or after Ctrl-C) resumes where it
stopped. ``explain`` prints, per text, each token's keep probability at every hidden-state index
(``E`` = word embeddings, ``k`` = the state entering layer ``k``) and the expected number of
indices it survives, and writes the token x layer heatmaps as PNG or SVG.
"""

import json
import os
import sys
from typing import Annotated, Any, Optional

import typer

from jaxplain.cli import _common
from jaxplain.cli._app import app
from jaxplain.errors import InputError

diffmask_app = typer.Typer(
    name="diffmask", no_args_is_help=True, add_completion=False,
    help="Differentiable masking (DiffMask): train gates for a model, explain texts with them.")
app.add_typer(diffmask_app, name="diffmask")

_RT_COLUMNS = ("category", "text", "movie_name")


def _is_table(path: str) -> bool:
  name = path.lower()
  for ext in (".bz2", ".gz", ".xz", ".zip"):
    name = name.removesuffix(ext)
  return name.endswith((".csv", ".tsv"))


def read_training_texts(source: str, split_seed: int = 0) -> tuple[list[str], list[str] | None,
                                                                   str]:
  """``(train_texts, valid_texts or None, description)`` from a data path (see the module doc).

  Raises:
    InputError: unreadable file, no usable column, or no text.
  """
  if source == "-":
    texts = [t.strip() for t in sys.stdin.read().splitlines() if t.strip()]
    if not texts:
      raise InputError("no text on stdin; pipe one text per line.")
    return texts, None, "stdin"
  if not os.path.exists(source):
    raise InputError(f"no data at {source}; pass the Rotten Tomatoes corpus "
                     "(rotten_tomatoes_corpus_full.csv.bz2), a CSV/TSV with a text column, or a "
                     "text file with one text per line.")
  if _is_table(source):
    import pandas as pd  # pylint: disable=g-import-not-at-top
    from jaxplain import data as jdata  # pylint: disable=g-import-not-at-top
    try:
      head = pd.read_csv(source, nrows=5, sep=None, engine="python")
    except Exception as e:  # pandas raises many types for a broken file
      raise InputError(f"cannot read {source} as CSV/TSV ({type(e).__name__}: {e}).") from None
    if all(c in head.columns for c in _RT_COLUMNS):
      rt = jdata.read_rotten_tomatoes(source)
      train, valid, _ = jdata.split_by_movie(rt, split_seed)
      return (list(train.text), list(valid.text),
              f"Rotten Tomatoes training split ({len(train)} texts; split seed {split_seed})")
    if "text" not in head.columns:
      raise InputError(f"{source} has no 'text' column (columns: "
                       f"{', '.join(map(str, head.columns))}); name the column of texts 'text'.")
    df = pd.read_csv(source, sep=None, engine="python")
    texts = [str(t).strip() for t in df["text"].dropna() if str(t).strip()]
  else:
    try:
      with open(source, encoding="utf-8") as f:
        texts = [t.strip() for t in f.read().splitlines() if t.strip()]
    except (OSError, UnicodeDecodeError) as e:
      raise InputError(f"cannot read texts from {source} ({e}); pass a UTF-8 text file with "
                       "one text per line.") from None
  if not texts:
    raise InputError(f"{source} holds no text.")
  return texts, None, f"{source} ({len(texts)} texts)"


@diffmask_app.command("train")
def train(
    data: Annotated[str, typer.Argument(
        help="Training texts: the Rotten Tomatoes corpus CSV (its training split is used), a "
        "CSV/TSV with a 'text' column, or a text file with one text per line (- = stdin).",
        show_default=False)],
    out: Annotated[str, typer.Option(
        "--out", "-o", help="Output directory: gates/ (selected), last_gates/, checkpoints/, "
        "metrics.json.")] = "diffmask",
    model: Annotated[Optional[str], typer.Option(
        "--model", "-m", help="Model directory or hub id [default: the built-in sentiment "
        "model].", show_default=False)] = None,
    variant: Annotated[str, typer.Option(
        "--variant", help="input (gates on the word embeddings) or hidden (on the state "
        "entering a layer).")] = "input",
    steps: Annotated[int, typer.Option("--steps", help="Training steps.")] = 2000,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Texts per step.")] = 64,
    margin: Annotated[float, typer.Option(
        "--margin", help="KL budget between the original and the masked prediction.")] = 0.1,
    penalty: Annotated[str, typer.Option(
        "--penalty", help="log_l0 (the authors' code) or l0 (the paper).")] = "log_l0",
    baseline: Annotated[str, typer.Option(
        "--baseline", help="learned (paper; [MASK]-initialised for input gates) or zero.")
                        ] = "learned",
    learning_rate: Annotated[float, typer.Option(
        "--lr", help="Probe learning rate (authors: 3e-4).")] = 3e-4,
    warmup: Annotated[int, typer.Option(
        "--warmup", help="Linear warm-up steps of the gate learning rates (authors: 1200).")
                      ] = 1200,
    max_length: Annotated[int, typer.Option(
        "--max-length", help="Truncate texts to this many tokens.")] = 64,
    train_size: Annotated[Optional[int], typer.Option(
        "--train-size", help="Use only this many training texts (a seeded sample).",
        show_default=False)] = None,
    eval_every: Annotated[int, typer.Option(
        "--eval-every", help="Validate (and select gates) every N steps.")] = 500,
    eval_size: Annotated[int, typer.Option(
        "--eval-size", help="Most validation texts.")] = 512,
    checkpoint_every: Annotated[int, typer.Option(
        "--checkpoint-every", help="Save a resumable checkpoint every N steps.")] = 500,
    seed: Annotated[int, typer.Option("--seed", help="Seed of everything random.")] = 0,
    split_seed: Annotated[int, typer.Option(
        "--split-seed", help="Seed of the Rotten Tomatoes split by movie (the default model was "
        "fine-tuned on split 0's training part).")] = 0,
    resume: Annotated[bool, typer.Option(
        "--resume/--no-resume", help="Continue a run found in --out, or refuse to touch it.")
                      ] = True,
    progress: Annotated[bool, typer.Option(
        "--progress/--no-progress", help="Show a progress bar.")] = True,
    cache: Annotated[bool, typer.Option(
        "--cache/--no-cache", help="Keep compiled programs in the persistent cache.")] = True,
) -> None:
  """Train DiffMask gates for a model on a data set (resumable)."""
  out_dir = os.path.abspath(os.path.expanduser(out))
  if os.path.isfile(out_dir):
    raise InputError(f"--out {out} is a file; pass a directory.")
  if not resume and os.path.isdir(os.path.join(out_dir, "checkpoints")) and os.listdir(
      os.path.join(out_dir, "checkpoints")):
    raise InputError(f"{out} already holds a DiffMask run; pass --resume to continue it or "
                     "choose a new --out.")
  if variant not in ("input", "hidden"):
    raise InputError(f"--variant must be input or hidden, got {variant!r}.")
  if not margin > 0 or margin == float("inf"):  # also NaN
    raise InputError(f"--margin must be > 0 and finite (the KL budget of the masked "
                     f"prediction), got {margin}; the authors use 0.1 for sentiment.")
  texts, valid_texts, described = read_training_texts(data, split_seed)
  if train_size is not None:
    if train_size < 1:
      raise InputError(f"--train-size must be >= 1, got {train_size}.")
    import numpy as np  # pylint: disable=g-import-not-at-top
    pick = np.random.default_rng(seed).permutation(len(texts))[:train_size]
    texts = [texts[i] for i in sorted(pick)]
  _common.configure_jax(cache)
  from jaxplain.attribution import diffmask as dm  # pylint: disable=g-import-not-at-top
  cfg = dm.DiffMaskConfig(variant=variant, margin=margin, penalty=penalty, baseline=baseline,
                          steps=steps, batch_size=batch_size, learning_rate=learning_rate,
                          warmup_steps=warmup, eval_every=eval_every, eval_size=eval_size,
                          checkpoint_every=checkpoint_every, seed=seed)
  loaded = _common.load(model)
  enc = lambda t: loaded.encode(t, max_length=min(max_length, loaded.max_length))
  train_batch = enc(texts)
  valid_batch = enc(valid_texts[:eval_size]) if valid_texts else None
  typer.echo(f"DiffMask ({variant} gates) for {loaded.name} on {described}; {steps} steps of "
             f"{min(batch_size, len(texts))}; output {out_dir}", err=True)
  res = dm.train_gates(loaded, train_batch, cfg, out_dir, valid=valid_batch,
                       progress=progress and sys.stderr.isatty())
  summary = {"model": loaded.name, "data": described, "variant": variant,
             "steps": int(res.state.step), "selected": res.best,
             "last_evaluation": res.evaluations[-1] if res.evaluations else None,
             "config": {k: v for k, v in vars(cfg).items()}}
  _common.write_atomic(os.path.join(out_dir, "metrics.json"),
                       json.dumps(summary, indent=1, default=float))
  print_training_summary(res)
  typer.echo(f"wrote {os.path.join(out_dir, 'gates')}", err=True)


def print_training_summary(res: Any) -> None:
  """The selected evaluation and the last one's per-index table."""
  from rich import box  # pylint: disable=g-import-not-at-top
  from rich.console import Console  # pylint: disable=g-import-not-at-top
  from rich.table import Table  # pylint: disable=g-import-not-at-top
  console = Console(highlight=False)
  if res.best is not None:
    b = res.best
    console.print(f"selected gates: step {b['step']}, KL {b['kl']:.4f}, agreement "
                  f"{b['agreement']:.3f}, fraction masked {1 - b['l0']:.3f}")
  else:
    console.print("no evaluation met the selection rule (KL <= eps_valid and agreement >= "
                  "acc_valid); saved the last gates.")
  if not res.evaluations:
    return
  last = res.evaluations[-1]
  table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                title=f"validation at step {last['step']}")
  for col in ("index", "KL", "agreement", "masked", "lambda"):
    table.add_column(col, justify="right")
  per = last["per_layer"]
  for k in range(len(per["kl"])):
    table.add_row("E" if k == 0 else str(k), f"{per['kl'][k]:.4f}", f"{per['agreement'][k]:.3f}",
                  f"{1 - per['l0'][k]:.3f}", f"{last['lambda'][k]:.2f}")
  console.print(table)


@diffmask_app.command("explain")
def explain(
    texts: Annotated[list[str], typer.Argument(
        help="Texts to explain; - reads one text per line from stdin.", show_default=False)],
    gates: Annotated[str, typer.Option(
        "--gates", "-g", help="Trained gates: the --out directory of `jaxplain diffmask "
        "train` (or its gates/).", show_default=False)],
    model: Annotated[Optional[str], typer.Option(
        "--model", "-m", help="Model directory or hub id [default: the built-in sentiment "
        "model]; must be the model the gates were trained for.", show_default=False)] = None,
    plots: Annotated[Optional[str], typer.Option(
        "--plots", help="Write a token x layer heatmap and a words-survived chart per text "
        "into this directory.", show_default=False)] = None,
    fmt: Annotated[str, typer.Option("--format", help="Plot format: png, svg or pdf.")] = "png",
    max_length: Annotated[Optional[int], typer.Option(
        "--max-length", help="Longest input in tokens [default: the model's].",
        show_default=False)] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print machine-readable JSON instead of tables.")] = False,
    cache: Annotated[bool, typer.Option(
        "--cache/--no-cache", help="Keep compiled programs in the persistent cache.")] = True,
) -> None:
  """Explain texts with trained DiffMask gates: keep probability per token and layer."""
  fmt = fmt.lower().lstrip(".")
  if fmt not in ("png", "svg", "pdf"):
    raise InputError(f"--format must be png, svg or pdf, got {fmt!r}.")
  texts = _common.read_texts(texts)
  if plots is not None:
    plots = os.path.abspath(os.path.expanduser(plots))
    try:
      os.makedirs(plots, exist_ok=True)
    except OSError as e:
      raise InputError(f"cannot create the plot directory {plots} ({e.strerror}).") from None
  _common.configure_jax(cache)
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jaxplain.attribution import diffmask as dm  # pylint: disable=g-import-not-at-top
  loaded = _common.load(model)
  trained = dm.load_gates(gates, loaded.config)
  batch = loaded.encode(texts, max_length=max_length)
  out = dm.explain(loaded, batch, trained)
  keep = np.asarray(out["keep"])
  probs = np.asarray(_softmax(np.asarray(out["logits"], np.float64)))
  mask = np.asarray(batch.attention_mask) > 0
  tokens = loaded.tokens(batch)
  k = keep.shape[-1]
  columns = ["E"] + [str(i) for i in range(1, k)]
  examples = []
  for i, text in enumerate(texts):
    rows = keep[i][mask[i]]
    pred = int(probs[i].argmax())
    ex = {"text": text, "label": _label(loaded.labels, pred),
          "probability": float(probs[i, pred]), "tokens": tokens[i], "indices": columns,
          "keep": rows.round(6).tolist(), "survived": rows.sum(-1).round(6).tolist()}
    if plots is not None:
      heat = dm.plot_heatmap(rows, tokens[i], os.path.join(plots, f"diffmask_{i}.{fmt}"),
                             title=f"{trained.variant} gates: {text[:60]}")
      ex["heatmap"] = heat
      if batch.word_ids is not None:
        words, surv = dm.words_survival(rows, np.asarray(batch.word_ids)[i][mask[i]], tokens[i])
        if words:
          ex["survival_plot"] = dm.plot_survival(
              words, surv, os.path.join(plots, f"survival_{i}.{fmt}"), num_states=k,
              title=f"{trained.variant} gates: {text[:60]}")
    examples.append(ex)
  if as_json:
    typer.echo(json.dumps({"model": loaded.name, "gates": os.path.abspath(gates),
                           "variant": trained.variant, "examples": examples},
                          ensure_ascii=False))
    return
  _print_tables(examples, trained.variant)
  if plots is not None:
    typer.echo(f"wrote {len(examples)} heatmap(s) to {plots}", err=True)


def _softmax(x):
  import numpy as np  # pylint: disable=g-import-not-at-top
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _label(labels: Any, index: int) -> str:
  return str(labels[index]) if 0 <= index < len(labels) else f"class {index}"


def _print_tables(examples: list[dict[str, Any]], variant: str) -> None:
  from rich import box  # pylint: disable=g-import-not-at-top
  from rich.console import Console  # pylint: disable=g-import-not-at-top
  from rich.table import Table  # pylint: disable=g-import-not-at-top
  from rich.text import Text  # pylint: disable=g-import-not-at-top
  console = Console(highlight=False)
  for ex in examples:
    console.print(Text(ex["text"], style="italic"))
    console.print(Text(f"{ex['label']} (p = {ex['probability']:.3f})   method: diffmask "
                       f"({variant} gates)   keep probability per index, E = word embeddings"))
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("token")
    for c in ex["indices"]:
      table.add_column(c, justify="right")
    table.add_column("survived", justify="right")
    for j, (tok, row, s) in enumerate(zip(ex["tokens"], ex["keep"], ex["survived"])):
      table.add_row(str(j), Text(tok), *[f"{v:.2f}" for v in row], f"{s:.2f}")
    console.print(table)
