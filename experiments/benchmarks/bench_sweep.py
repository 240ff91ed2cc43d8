"""A corpus sweep, jaxplain vs Captum + ferret-style metrics, on the same weights in one run.

    python experiments/benchmarks/bench_sweep.py [--n 2000] [--captum-n N] [--batch 32]
        [--data-dir ../shared/data] [--write experiments/benchmarks/results/bench_sweep.md]

On ``--n`` Rotten Tomatoes critics' snippets (``rotten_tomatoes_corpus_full.csv.bz2`` read with
``jaxplain.data.read_rotten_tomatoes``: fresh/rotten rows, unique texts; a seeded random sample)
and the default model (``jaxplain.default_model()``: all-MiniLM-L6-v2 + the LoRA sentiment
adapter, merged), it runs:

- **jaxplain**: ``jaxplain.corpus.sweep`` end to end (read the csv, tokenise, bucket by length,
  one compiled step per bucket, write Parquet shards + manifest) with IG-50, gradient x input and
  saliency plus comprehensiveness and sufficiency (ERASER bins 1/5/10/20/50 %) of every method.
  Programs are compiled first by a warm-up sweep over one example per bucket (reported apart);
  the timed sweep is a fresh output directory, so examples/s covers everything a user waits for
  except compilation.
- **Captum + ferret-style metrics** on a Hugging Face ``BertForSequenceClassification`` holding
  the very same weights (logit agreement printed): batched ``LayerIntegratedGradients`` (50
  Gauss-Legendre steps on the word embeddings, ``[CLS] [PAD]... [SEP]`` baseline,
  ``internal_batch_size`` = the same examples x steps per pass jaxplain uses), ``Saliency`` and
  ``InputXGradient`` on the embeddings, on the same length-sorted batches, each padded to its own
  longest text (the least padding PyTorch can do); then the metrics as ferret computes them:
  per example and method, remove (comprehensiveness) or keep (sufficiency) the top-k% tokens
  *as strings*, re-tokenise and run one forward per level (plus one on the full text).
  ``--captum-n`` (default: all) times that side on a random subset of the examples; its rate is
  per example on that subset, and the table also gives a work-normalised ratio (useful GFLOP/s),
  which does not depend on which examples the subset drew.

Padding waste: the sweep's own count with length bucketing, without (file-order batches, each
padded to its longest input's bucket) and with one shape (everything padded to max_length).

Model FLOP utilisation: matmul FLOPs of the real (non-padding) tokens only, the same for both
sides: per example one forward for the prediction, 50 forward + input-gradient backward passes
for IG, one more for gradient x input and saliency (one shared backward), and per method one
forward on the full text and one per removal level on the shortened inputs. An input-gradient
backward costs 2 x dense + 3 x attention FLOPs of the forward (no weight gradients). Divided by
wall time and by a float32 matmul peak measured on the spot (a 2048^3 ``jnp.dot``, best of 5,
before and after; the larger is used).

CPU-only as run here; on a machine shared with other jobs compare the ratio within one run.
"""

import argparse
import math
import os
import shutil
import sys
import tempfile
import time

import jax
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, REPO)

from jaxplain import corpus  # noqa: E402
from jaxplain.data import read_rotten_tomatoes  # noqa: E402
from jaxplain.models.tokenize import bucket_length  # noqa: E402
from _common import load_model, matmul_peak, to_torch  # noqa: E402

IG_STEPS = 50
BINS = (0.01, 0.05, 0.10, 0.20, 0.50)
METHODS = ("integrated_gradients", "gradient_x_input", "saliency")


# --- model, data, FLOPs ------------------------------------------------------------------------


def forward_flops(config, n: int) -> float:
  """Matmul FLOPs of one forward over ``n`` real tokens."""
  h, i, layers = config.hidden_size, config.intermediate_size, config.num_layers
  dense = layers * 2 * n * (4 * h * h + 2 * h * i) + 2 * h * h + 2 * h * config.num_labels
  attention = layers * 2 * (2 * n * n * h)
  return dense + attention


def grad_flops(config, n: int) -> float:
  """Forward + input-gradient backward (``dx`` only): 2 x dense + 3 x attention."""
  h, i, layers = config.hidden_size, config.intermediate_size, config.num_layers
  dense = layers * 2 * n * (4 * h * h + 2 * h * i) + 2 * h * h + 2 * h * config.num_labels
  attention = layers * 2 * (2 * n * n * h)
  return 2 * dense + 3 * attention


def removal_lengths(n: int) -> list[int]:
  """Token counts of the comprehensiveness and sufficiency inputs of an ``n``-token example
  (``n - 2`` removable tokens, ``ceil(bin * (n - 2))`` removed / kept, specials stay)."""
  m = n - 2
  ks = [min(m, max(1, math.ceil(b * m))) for b in BINS]
  return [n - k for k in ks] + [2 + k for k in ks]


def useful_flops(config, n: int) -> float:
  """The work of one example (see the module docstring), the same for both sides."""
  f = lambda k: forward_flops(config, k)
  metrics = len(METHODS) * (f(n) + sum(f(k) for k in removal_lengths(n)))
  return f(n) + (IG_STEPS + 1) * grad_flops(config, n) + metrics


# --- jaxplain ----------------------------------------------------------------------------------


def run_jaxplain(model, csv: str, n: int, lengths: np.ndarray, args, work: str):
  """Warm-up sweep (one example per bucket: compiles every program), then the timed sweep."""
  common = dict(methods={"integrated_gradients": {"steps": IG_STEPS, "chunk_size": args.chunk},
                         "gradient_x_input": {}, "saliency": {}},
                metrics=["comprehensiveness", "sufficiency"], batch_size=args.batch)
  buckets = {}
  for i, k in enumerate(lengths):
    buckets.setdefault(bucket_length(int(k), model.max_length, model.buckets), i)
  warm_csv = os.path.join(work, "warm.csv")
  import pandas as pd  # pylint: disable=g-import-not-at-top
  pd.read_csv(csv).iloc[sorted(buckets.values())].to_csv(warm_csv, index=False)
  quiet = lambda line: None
  t0 = time.perf_counter()
  corpus.sweep(corpus.make_config(data={"source": warm_csv, "label_column": "label"},
                                  output=os.path.join(work, "warm"), shard_size=1, **common),
               model=model, progress=False, log=quiet)
  compile_s = time.perf_counter() - t0
  config = corpus.make_config(data={"source": csv, "label_column": "label"},
                              output=os.path.join(work, "sweep"), **common)
  t0, c0 = time.perf_counter(), time.process_time()
  summary = corpus.sweep(config, model=model, progress=False, log=quiet)
  wall, cpu = time.perf_counter() - t0, time.process_time() - c0
  assert summary.examples == n, summary
  return summary, wall, cpu, compile_s, sorted(buckets)


# --- Captum + ferret-style metrics -------------------------------------------------------------


class CaptumSide:
  """Captum attributions (batched) and ferret-style string-removal metrics (per example)."""

  def __init__(self, torch_model, tokenizer, max_length: int):
    import torch  # pylint: disable=g-import-not-at-top
    from captum.attr import (InputXGradient, LayerIntegratedGradients,  # pylint: disable=g-import-not-at-top
                             Saliency)
    self.torch, self.model, self.tok, self.max_length = torch, torch_model, tokenizer, max_length
    table = torch_model.bert.embeddings.word_embeddings
    self.table = table
    f_ids = lambda i, m: torch_model(input_ids=i, attention_mask=m).logits
    f_emb = lambda e, m: torch_model(inputs_embeds=e, attention_mask=m).logits
    self.f_ids = f_ids
    self.lig = LayerIntegratedGradients(f_ids, table)
    self.ixg = InputXGradient(f_emb)
    self.sal = Saliency(f_emb)
    self.specials = set(tokenizer.all_special_ids)

  def attribute(self, texts: list[str], internal_batch_size: int):
    """Token scores ``{method: [B, T]}`` (padding 0), the ids and the predicted classes."""
    t = self.torch
    enc = self.tok(texts, padding="longest", truncation=True, max_length=self.max_length,
                   return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    special = t.zeros_like(ids, dtype=t.bool)
    for s in self.specials:
      special |= ids == s
    base = t.where(special, ids, t.full_like(ids, self.tok.pad_token_id))
    with t.no_grad():
      target = self.f_ids(ids, mask).argmax(-1)
    ig = self.lig.attribute(ids, baselines=base, target=target, additional_forward_args=(mask,),
                            n_steps=IG_STEPS, method="gausslegendre",
                            internal_batch_size=internal_batch_size).sum(-1)
    emb = self.table(ids).detach()
    gxi = self.ixg.attribute(emb, target=target, additional_forward_args=(mask,)).sum(-1)
    sal = self.sal.attribute(emb, target=target, additional_forward_args=(mask,),
                             abs=False).norm(dim=-1)
    scores = {m: (s.detach() * mask).numpy() for m, s in zip(METHODS, (ig, gxi, sal))}
    return scores, ids.numpy(), mask.numpy(), target.numpy()

  def _prob(self, text: str, target: int) -> float:
    t = self.torch
    enc = self.tok(text, truncation=True, max_length=self.max_length, return_tensors="pt")
    with t.no_grad():
      return float(t.softmax(self.model(**enc).logits[0], -1)[target])

  def metrics(self, ids: np.ndarray, mask: np.ndarray, scores: dict, target: int) -> dict:
    """ferret-style comprehensiveness/sufficiency of one example: per method and removal level,
    the kept tokens joined into a string, re-tokenised, and one forward."""
    n = int(mask.sum())
    tokens = self.tok.convert_ids_to_tokens(ids[:n].tolist())
    body = list(range(1, n - 1))  # [CLS] ... [SEP]
    full = self.tok.convert_tokens_to_string([tokens[i] for i in body])
    p = self._prob(full, target)
    out = {}
    for m, s in scores.items():
      order = sorted(body, key=lambda i: -s[i])
      comp, suff = [], []
      for b in BINS:
        k = min(len(body), max(1, math.ceil(b * len(body))))
        top = set(order[:k])
        rest = self.tok.convert_tokens_to_string([tokens[i] for i in body if i not in top])
        kept = self.tok.convert_tokens_to_string([tokens[i] for i in body if i in top])
        comp.append(p - self._prob(rest, target))
        suff.append(p - self._prob(kept, target))
      out[m] = (float(np.mean(comp)), float(np.mean(suff)))
    return out


def run_captum(side: CaptumSide, texts: list[str], lengths: np.ndarray, batch: int,
               internal_batch_size: int):
  order = np.argsort(lengths, kind="stable")
  t0, c0 = time.perf_counter(), time.process_time()
  t_attr = 0.0
  for s in range(0, len(order), batch):
    idx = order[s:s + batch]
    ta = time.perf_counter()
    scores, ids, mask, target = side.attribute([texts[j] for j in idx], internal_batch_size)
    t_attr += time.perf_counter() - ta
    for r in range(len(idx)):
      side.metrics(ids[r], mask[r], {m: v[r] for m, v in scores.items()}, int(target[r]))
  wall, cpu = time.perf_counter() - t0, time.process_time() - c0
  return wall, cpu, t_attr


# --- main --------------------------------------------------------------------------------------


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--n", type=int, default=2000, help="snippets swept (default 2000)")
  p.add_argument("--captum-n", type=int, default=None,
                 help="examples the Captum side runs (a random subset; default: all --n)")
  p.add_argument("--batch", type=int, default=16, help="examples per batch, both sides")
  p.add_argument("--chunk", type=int, default=5,
                 help="IG steps per pass (jaxplain chunk_size; Captum internal_batch_size = "
                 "batch x chunk)")
  p.add_argument("--data-dir", default=os.path.join(REPO, "..", "shared", "data"))
  p.add_argument("--write", default=None, help="also write the table (markdown) to this file")
  args = p.parse_args()
  command = "python " + " ".join([os.path.relpath(__file__, REPO)] + sys.argv[1:])

  import torch  # pylint: disable=g-import-not-at-top
  import captum  # pylint: disable=g-import-not-at-top
  import pandas as pd  # pylint: disable=g-import-not-at-top
  lines = []

  def say(line: str = "") -> None:
    print(line, flush=True)
    lines.append(line)

  path = os.path.join(args.data_dir, "rotten_tomatoes_corpus_full.csv.bz2")
  df = read_rotten_tomatoes(path)
  df = df.sample(n=min(args.n, len(df)), random_state=0).reset_index(drop=True)
  n = len(df)
  model, model_note = load_model()
  work = tempfile.mkdtemp(prefix="bench_sweep-")
  csv = os.path.join(work, "snippets.csv")
  df[["text", "label"]].to_csv(csv, index=False)
  lengths = np.asarray([min(len(x), model.max_length)
                        for x in model.tokenizer(df["text"].tolist())["input_ids"]])
  peak0 = matmul_peak()
  say(f"# bench_sweep: {n} Rotten Tomatoes snippets, {model_note}")
  say()
  say(f"command: `{command}`")
  say()
  say(f"machine: {os.cpu_count()} CPU cores, load average "
      f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} at start | jax {jax.__version__} "
      f"{jax.devices()[0].platform} x{jax.device_count()} | torch {torch.__version__} "
      f"({torch.get_num_threads()} threads) | captum {captum.__version__}")
  say(f"tokens per snippet: mean {lengths.mean():.1f}, max {lengths.max()} "
      f"(special tokens included)")

  torch_model = to_torch(model)
  check = model.encode(df["text"].tolist()[:8])
  ours = np.asarray(model(check))
  with torch.no_grad():
    theirs = torch_model(input_ids=torch.tensor(np.asarray(check.input_ids), dtype=torch.long),
                         attention_mask=torch.tensor(np.asarray(check.attention_mask))
                         ).logits.numpy()
  say(f"same weights: max |logit jaxplain - logit torch| = {np.abs(ours - theirs).max():.2e}")

  summary, j_wall, j_cpu, compile_s, buckets = run_jaxplain(model, csv, n, lengths, args, work)
  say(f"jaxplain: {n} examples in {j_wall:.1f} s wall ({j_cpu:.1f} s CPU); compilation of "
      f"{len(buckets)} bucket(s) {buckets} in the warm-up: {compile_s:.1f} s (excluded)")

  rng = np.random.default_rng(0)
  captum_n = min(args.captum_n or n, n)
  subset = np.sort(rng.choice(n, captum_n, replace=False))
  side = CaptumSide(torch_model, model.tokenizer, model.max_length)
  texts = df["text"].tolist()
  c_wall, c_cpu, c_attr = run_captum(side, [texts[i] for i in subset], lengths[subset],
                                     args.batch, args.batch * args.chunk)
  say(f"Captum + ferret-style metrics: {captum_n} examples in {c_wall:.1f} s wall ({c_cpu:.1f} s "
      f"CPU; attributions {c_attr:.1f} s, string-removal metrics {c_wall - c_attr:.1f} s)"
      + ("" if captum_n == n else f", a random subset of the {n}: its rate is extrapolated per "
         "example"))
  peak = max(peak0, matmul_peak())

  work_all = sum(useful_flops(model.config, int(k)) for k in lengths)
  work_sub = sum(useful_flops(model.config, int(k)) for k in lengths[subset])
  j_rate, c_rate = n / j_wall, captum_n / c_wall
  j_flops, c_flops = work_all / j_wall, work_sub / c_wall
  pad = summary.padding
  say()
  say("| | examples/s | useful GFLOP/s | model FLOP utilisation | examples per CPU-second |")
  say("|---|---:|---:|---:|---:|")
  say(f"| jaxplain sweep (IG-50, grad x input, saliency + comp./suff., Parquet out) | "
      f"{j_rate:.2f} | {j_flops / 1e9:.1f} | {j_flops / peak:.1%} | {n / j_cpu:.3f} |")
  say(f"| Captum batched + ferret-style metrics{'' if captum_n == n else f' ({captum_n} of {n})'}"
      f" | {c_rate:.2f} | {c_flops / 1e9:.1f} | {c_flops / peak:.1%} | {captum_n / c_cpu:.3f} |")
  say(f"| ratio jaxplain / Captum | {j_rate / c_rate:.1f}x | {j_flops / c_flops:.1f}x | | "
      f"{(n / j_cpu) / (captum_n / c_cpu):.1f}x |")
  say()
  say(f"matmul peak measured on the spot (float32 2048^3 jnp.dot, best of 5): "
      f"{peak / 1e9:.1f} GFLOP/s")
  say(f"padding waste (share of computed token slots that are padding): "
      f"{pad['padding_waste']:.1%} with length bucketing, "
      f"{pad['padding_waste_file_order']:.1%} without (file-order batches, each padded to its "
      f"longest input's bucket), {pad['padding_waste_fixed']:.1%} padding everything to "
      f"max_length {model.max_length}")
  say(f"load average at end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
  shutil.rmtree(work, ignore_errors=True)
  if args.write:
    with open(args.write, "w") as f:
      f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
  main()
