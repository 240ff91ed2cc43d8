"""Gradient attributions, jaxplain vs Captum on the same weights: IG-50, gradient x input, SmoothGrad-10.

    python experiments/benchmarks/bench_gradients.py [--n 512] [--captum-n N] [--single-n N]
        [--data /work/shared/data/rotten_tomatoes_corpus_full.csv.bz2]

On ``--n`` Rotten Tomatoes critics' snippets (fresh/rotten rows, unique texts, a seeded random
sample) and the default model (``jaxplain.default_model()``; when its adapter is missing,
all-MiniLM-L6-v2 base weights with a seeded random two-class head, and the output says so), it
times:

- jaxplain: the registered kernels jitted through ``jaxplain.api.compiled`` on length-bucketed
  batches (sorted by length, ``--batch`` examples, padded to the model's buckets, by default
  ``jaxplain.models.BUCKETS``; ``--buckets`` sets others, ``--fine-buckets`` adds a second
  jaxplain row with other buckets, e.g. the ``fine`` preset; ``--pack`` adds a row with sequence
  packing, ``jaxplain.attribute(..., pack=True)``'s layout: all examples best-fit into rows of
  ``--pack`` tokens, ``auto`` = ``jaxplain.models.default_row_length``, 2048 tokens per batch,
  each example's predicted class found inside the timed call); IG and
  SmoothGrad with the
  library's default ``chunk_size="auto"`` (on the CPU: as many steps per pass as keep it within
  2048 token rows, ``_quadrature.CPU_TOKEN_ROWS``), or ``chunk_size = --rows // --batch`` when
  ``--rows`` is given (at most ``--rows`` examples x steps per pass, the unit of Captum's
  ``internal_batch_size``; runs before 2026-11-23 23:00 UTC used ``--rows 160``); compile time
  and one first execution per shape (which builds its runtime kernels) are reported apart and
  excluded from examples/s, as Captum gets an untimed warm-up call.
- Captum on a Hugging Face ``BertForSequenceClassification`` built from the very same weights
  (logit agreement printed): ``LayerIntegratedGradients`` on the word embeddings, 50 Gauss-Legendre
  steps, the ``[CLS] [PAD] ... [SEP]`` baseline; ``InputXGradient`` and ``NoiseTunnel(Saliency)``
  (10 samples, stdev 0.15) on the embeddings.
  (a) one example at a time without padding, as transformers-interpret and ferret do, on
  ``--single-n`` examples; (b) batched: the same length-sorted batches, each padded to its own
  longest text (the least padding PyTorch can do), with ``internal_batch_size`` (IG: 64, 32 or
  160 rows) / ``nt_samples_batch_size`` (SmoothGrad: 1, 2 or 5 samples) chosen by timing each on
  ``--tune-n`` examples of a mid-length batch first, on ``--captum-n`` examples. Both are random
  subsets of the ``--n``; their examples/s are rates on that subset, so the table also gives a
  work-normalised ratio (useful GFLOP/s against useful GFLOP/s), which does not depend on which
  examples a subset drew.

The runners are timed interleaved, batch by batch (jaxplain batch ``r``, Captum batch ``r``, the
``r``-th slice of the one-at-a-time examples, then ``r + 1``...), so that a drift of this shared
machine's speed during the run falls on all of them alike.

Useful-FLOP utilisation: the matmul FLOPs of the real (non-padding) tokens only, for the forward
pass plus the input-gradient backward pass, per IG step / noise sample, divided by wall time and by
a matmul peak measured on the spot (a 2048^3 float32 ``jnp.dot``, best of 5; measured before and
after the runs, the larger is used). An input-gradient backward needs no weight gradients, so it
costs one matmul per dense layer (``dx = dy W^T``) and two per attention product (``dQ, dK`` and
``dA, dV``): useful = 2 x dense + 3 x attention FLOPs of the forward (not the 3x forward of
training). The extra forward each method runs to find the predicted class is not counted.

Finally a fresh subprocess runs IG with ``--memory-steps`` (300) steps on one 512-token input with
``chunk_size=--memory-chunk`` and prints its peak resident memory (``VmHWM``, the whole process:
Python, the model, XLA) and XLA's own memory analysis of the compiled program (temporaries),
also for the same program without chunking (compiled only, not run).

CPU only as written; on a machine shared with other jobs compare ratios within one run.
"""

import argparse
import inspect
import json
import os
import resource
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from jaxplain.api import compiled  # noqa: E402
from jaxplain.attribution import METHODS as KERNELS  # noqa: E402
from jaxplain.attribution import PACKABLE, auto_token_rows  # noqa: E402
from jaxplain.models import default_row_length, pack, unpack  # noqa: E402
from _common import bucketed_batches, load_model, load_texts, matmul_peak, to_torch  # noqa: E402

METHODS = {  # name -> (jaxplain kernel, static hyper, forward+backward passes per example)
    "ig50": ("integrated_gradients", (("steps", 50),), 50),
    "gxi": ("gradient_x_input", (), 1),
    "smoothgrad10": ("smoothgrad", (("base", "saliency"), ("norm", "l1"), ("samples", 10),
                                    ("stdev", 0.15)), 10),
}
LABEL = {"ig50": "IG-50", "gxi": "gradient x input", "smoothgrad10": "SmoothGrad-10"}


def useful_flops(config, n: int) -> float:
  """Matmul FLOPs of forward + input-gradient backward over ``n`` real tokens (one pass).

  Dense layers (Q, K, V, attention output, FFN in/out) cost ``2 n in out`` forward and the same
  again backward (``dx`` only); the two attention products (``Q K^T``, ``A V``) cost ``2 n^2 h``
  each forward and twice that backward (both operands depend on the input).
  """
  h, i, layers = config.hidden_size, config.intermediate_size, config.num_layers
  dense = layers * 2 * n * (4 * h * h + 2 * h * i) + 2 * h * h + 2 * h * config.num_labels
  attention = layers * 2 * (2 * n * n * h)
  return 2 * dense + 3 * attention


def token_ids(model, name: str) -> dict:
  """The tokenizer's special ids, for the kernels that take them (as ``jaxplain.attribute``)."""
  tok = model.tokenizer
  ids = dict(pad_id=tok.pad_token_id, mask_id=tok.mask_token_id, unk_id=tok.unk_token_id)
  ids["special_ids"] = tuple(sorted(set(tok.all_special_ids) - set(ids.values())))
  accepted = inspect.signature(KERNELS[name]).parameters
  return {k: v for k, v in ids.items() if k in accepted}


def jaxplain_fn(model, name, hyper):
  return compiled(name, tuple(sorted(dict(dict(hyper), **token_ids(model, name)).items())),
                  model.forward)


def packed_batches(model, texts, row_length: str):
  """``texts`` packed as ``attribute(..., pack=True)`` packs them: ``(parts, layout, full)``."""
  full = model.encode(texts, max_length=512)
  lengths = np.asarray(full.attention_mask).sum(1)
  p = (default_row_length(lengths, 512, model.buckets) if row_length == "auto"
       else int(row_length))
  parts, layout = pack(full, p, max(1, auto_token_rows() // p))
  return [(None, jax.tree.map(jnp.asarray, b)) for b in parts], layout, full


def prepare_jaxplain(model, batches, name, hyper, rows=None, fn=None, targets=None):
  """One kernel compiled and run once for every bucket shape (timed apart), as one callable per
  batch that returns the kernel's output; ``rows`` bounds examples x steps per pass (IG's and
  SmoothGrad's ``chunk_size`` = ``rows // batch``), as Captum's ``internal_batch_size`` does;
  ``None`` keeps the library's ``chunk_size="auto"``. ``fn`` replaces the library's jitted kernel
  (same signature); ``targets`` gives one target per batch (default: the predicted class).
  Returns ``(calls, compile seconds, shapes)``."""
  if rows and name in ("integrated_gradients", "smoothgrad"):
    b = max(x.input_ids.shape[0] for _, x in batches)
    hyper = tuple(hyper) + (("chunk_size", max(1, rows // b)),)
  fn = jaxplain_fn(model, name, hyper) if fn is None else fn
  targets = [None] * len(batches) if targets is None else targets
  key = jax.random.key(0)
  t0 = time.perf_counter()
  exe = {}
  for (_, b), tg in zip(batches, targets):
    shape = b.input_ids.shape
    if shape not in exe:
      exe[shape] = fn.lower(model.params, b, tg, key).compile()
      # The first execution of a compiled program also builds its runtime kernels (about 1.4 s
      # for an IG-50 program here): part of getting ready, like compiling, so it is done now.
      jax.block_until_ready(exe[shape](model.params, b, tg, key))
  compile_s = time.perf_counter() - t0
  calls = [lambda b=b, tg=tg: jax.block_until_ready(
      exe[b.input_ids.shape](model.params, b, tg, key)) for (_, b), tg in zip(batches, targets)]
  return calls, compile_s, len(exe)


def interleaved(runners: dict, settle: float = 0.5) -> dict:
  """Runs ``{name: [callable, ...]}`` round by round, each runner's ``r``-th callable in turn, and
  returns ``{name: (wall s, CPU s of this process)}`` summed over its callables.

  Interleaving spreads every runner over the whole measurement, so a drift of the machine's
  speed (this shared CPU's matmul peak moved between 170 and 195 GFLOP/s within an hour) hits
  all runners alike instead of whichever ran in the slow minutes. Each call starts after
  ``settle`` idle seconds (not timed): right after PyTorch work its OpenMP threads keep spinning
  for a while and slow an XLA call started then (``profile_ig_pass.py``: 50 ms instead of 42 ms
  for a 1536^3 matmul), which would bill one library for the other's idle threads.
  """
  totals = {k: [0.0, 0.0] for k in runners}  # a None callable is a round skipped
  for r in range(max(len(v) for v in runners.values())):
    for k, calls in runners.items():
      if r < len(calls) and calls[r] is not None:
        time.sleep(settle)
        t0, c0 = time.perf_counter(), time.process_time()
        calls[r]()
        totals[k][0] += time.perf_counter() - t0
        totals[k][1] += time.process_time() - c0
  return {k: tuple(v) for k, v in totals.items()}


class CaptumRunner:
  """Captum on the HF model: LIG on the word embeddings, InputXGradient, NoiseTunnel(Saliency);
  for ``bench_attribute_call.py`` also the layer variants on the embeddings and every encoder
  layer: ``LayerGradientXActivation`` on all of them in one pass (``lgxa``) and
  ``LayerIntegratedGradients`` on each in turn (``lig50``, ``L+1`` runs: Captum integrates one
  layer at a time)."""

  def __init__(self, torch_model, tokenizer):
    import torch  # pylint: disable=g-import-not-at-top
    from captum.attr import (InputXGradient, LayerGradientXActivation,  # pylint: disable=g-import-not-at-top
                             LayerIntegratedGradients, NoiseTunnel, Saliency)
    self.torch, self.model = torch, torch_model
    self.pad = tokenizer.pad_token_id
    self.specials = set(tokenizer.all_special_ids) - {tokenizer.pad_token_id,
                                                      tokenizer.mask_token_id,
                                                      tokenizer.unk_token_id}
    table = torch_model.bert.embeddings.word_embeddings
    self.table = table
    f_ids = lambda i, m, t: torch_model(input_ids=i, attention_mask=m, token_type_ids=t).logits
    f_emb = lambda e, m, t: torch_model(inputs_embeds=e, attention_mask=m,
                                        token_type_ids=t).logits
    self.lig = LayerIntegratedGradients(f_ids, table)
    self.ixg = InputXGradient(f_emb)
    self.nt = NoiseTunnel(Saliency(f_emb))
    self.f_ids = f_ids
    layers = [torch_model.bert.embeddings] + list(torch_model.bert.encoder.layer)
    self.lgxa = LayerGradientXActivation(f_ids, layers)
    self.lig_layers = [LayerIntegratedGradients(f_ids, layer) for layer in layers]

  def tensors(self, ids, mask, types):
    t = self.torch
    ids, mask, types = (t.as_tensor(np.asarray(a), dtype=t.long) for a in (ids, mask, types))
    keep = t.zeros_like(ids, dtype=t.bool)
    for s in self.specials:
      keep |= ids == s
    base = t.where(keep | (mask == 0), ids, t.full_like(ids, self.pad))
    with t.no_grad():
      target = self.f_ids(ids, mask, types).argmax(-1)
    return ids, mask, types, base, target

  def run(self, method, ids, mask, types, internal_batch_size=None):
    ids, mask, types, base, target = self.tensors(ids, mask, types)
    extra = (mask, types)
    if method == "ig50":
      return self.lig.attribute(ids, baselines=base, target=target, additional_forward_args=extra,
                                n_steps=50, internal_batch_size=internal_batch_size)
    if method == "lgxa":
      return self.lgxa.attribute(ids, target=target, additional_forward_args=extra)
    if method == "lig50":
      return [lig.attribute(ids, baselines=base, target=target, additional_forward_args=extra,
                            n_steps=50, internal_batch_size=internal_batch_size)
              for lig in self.lig_layers]
    emb = self.table(ids).detach()
    if method == "gxi":
      return self.ixg.attribute(emb, target=target, additional_forward_args=extra)
    return self.nt.attribute(emb, nt_type="smoothgrad", nt_samples=10, stdevs=0.15,
                             nt_samples_batch_size=internal_batch_size, target=target,
                             additional_forward_args=extra)


def time_captum(runner, method, batches, internal_batch_size=None):
  """``(wall s, CPU s of this process, all threads)``."""
  t0, c0 = time.perf_counter(), time.process_time()
  for b in batches:
    runner.run(method, *b, internal_batch_size=internal_batch_size)
  return time.perf_counter() - t0, time.process_time() - c0


def peak_rss_gib() -> float:
  """This process's peak resident memory in GiB: ``VmHWM`` of ``/proc/self/status`` on Linux.

  Not ``ru_maxrss``: Linux keeps that high-water mark across ``fork`` + ``exec``, so a child
  started by a parent that holds torch, Captum and the data reports the parent's peak (6 GiB
  here) instead of its own.
  """
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) / 2 ** 20  # kB -> GiB
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB -> GiB on Linux


def memory_child(steps: int, chunk: int, unchunked: bool) -> None:
  """Subprocess body: IG with ``steps`` on one 512-token input, chunked; prints JSON lines.

  XLA's memory analysis of the compiled program comes first (printed at once), then the run and
  this process's peak resident memory (``VmHWM``: Python, the model, XLA, the run), and last,
  with ``unchunked``, the analysis of the same program without chunking (compiled, never run;
  after the measurement, so its compile cannot raise the peak measured).
  """
  model, note = load_model()
  words = ("an utterly charming film that never once stoops to easy sentiment " * 80).split()
  batch = model.encode([" ".join(words)], max_length=512).device_part()
  assert batch.input_ids.shape == (1, 512), batch.input_ids.shape
  ids = token_ids(model, "integrated_gradients")
  key = jax.random.key(0)

  def build(c):
    f = compiled("integrated_gradients", tuple(sorted(dict(steps=steps, chunk_size=c,
                                                          **ids).items())), model.forward)
    t0 = time.perf_counter()
    exe = f.lower(model.params, batch, None, key).compile()
    seconds = time.perf_counter() - t0
    try:
      m = exe.memory_analysis()
      gib = {"temp_gib": round(m.temp_size_in_bytes / 2 ** 30, 3),
             "arguments_gib": round(m.argument_size_in_bytes / 2 ** 30, 3)}
    except Exception as e:  # memory_analysis is best effort on some backends
      gib = {"temp_gib": f"n/a ({type(e).__name__})"}
    return exe, dict(chunk_size=c, compile_s=round(seconds, 1), **gib)

  exe, info = build(chunk)
  rss_compiled = peak_rss_gib()
  print(json.dumps(dict(stage="compiled (XLA memory analysis)", **info,
                        peak_rss_gib_so_far=round(rss_compiled, 3), model=note)), flush=True)
  t0 = time.perf_counter()
  scores = jax.block_until_ready(exe(model.params, batch, None, key))
  seconds = time.perf_counter() - t0
  rss = peak_rss_gib()
  stats = jax.devices()[0].memory_stats()
  print(json.dumps(dict(
      stage="IG run finished", steps=steps, chunk_size=chunk, tokens=512,
      peak_rss_gib=round(rss, 3), seconds=round(seconds, 1),
      finite=bool(np.isfinite(np.asarray(scores)).all()),
      jax_memory_stats=(None if not stats else {k: v for k, v in stats.items() if "peak" in k}))),
        flush=True)
  if unchunked:
    _, info = build(None)
    print(json.dumps(dict(stage="unchunked program, compiled only (XLA memory analysis)",
                          **info)), flush=True)


def run_memory(args) -> None:
  """IG-``--memory-steps`` on one 512-token input in a fresh process; prints its JSON lines."""
  print(f"\n[memory] IG-{args.memory_steps}, chunk_size={args.memory_chunk}, one 512-token "
        f"input, fresh process; date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"load average {os.getloadavg()[0]:.1f}", flush=True)
  cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", "--memory-steps",
         str(args.memory_steps), "--memory-chunk", str(args.memory_chunk)]
  if args.memory_unchunked:
    cmd.append("--memory-unchunked")
  out = subprocess.run(cmd, stderr=subprocess.PIPE, text=True, check=False)
  if out.returncode:
    print(f"[memory] child failed ({out.returncode}): {out.stderr[-800:]}")


def _buckets(text: str) -> str | tuple[int, ...]:
  """``--buckets`` / ``--fine-buckets``: a preset name (``fine``, ``default``) or lengths."""
  return text if text.isalpha() else tuple(int(b) for b in text.split(","))


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--data", default="/work/shared/data/rotten_tomatoes_corpus_full.csv.bz2")
  p.add_argument("--n", type=int, default=512)
  p.add_argument("--batch", type=int, default=32, help="examples per jaxplain/Captum batch")
  p.add_argument("--buckets", default=None,
                 help="comma-separated padded lengths for jaxplain, or a preset name of "
                      "jaxplain.models.BUCKET_PRESETS (default: the library's)")
  p.add_argument("--fine-buckets", default=None,
                 help="also time jaxplain with these comma-separated padded lengths or this preset "
                      "(e.g. fine: a second row; the speed-ups stay relative to the first)")
  p.add_argument("--pack", default=None,
                 help="also time jaxplain with sequence packing (gradient x input, IG): 'auto' "
                      "(rows as attribute(pack=True) lays them out) or a row length")
  p.add_argument("--captum-n", type=int, default=None,
                 help="examples batched Captum times (default: all --n)")
  p.add_argument("--single-n", type=int, default=None,
                 help="examples the one-at-a-time Captum loop times (default: --captum-n)")
  p.add_argument("--methods", default="ig50,gxi,smoothgrad10")
  p.add_argument("--memory-steps", type=int, default=300)
  p.add_argument("--memory-chunk", type=int, default=4)
  p.add_argument("--memory-unchunked", action="store_true",
                 help="also compile (not run) the unchunked program for XLA's memory estimate")
  p.add_argument("--rows", type=int, default=None,
                 help="jaxplain: at most this many examples x steps (or samples) per pass, "
                      "through chunk_size = rows // batch (default: the library's "
                      "chunk_size='auto', a token-row budget)")
  p.add_argument("--tune-n", type=int, default=8,
                 help="examples of the mid-length batch Captum's batch-size options are timed "
                      "on (0: no tuning, IG internal_batch_size 64, SmoothGrad 5 samples)")
  p.add_argument("--skip-memory", action="store_true")
  p.add_argument("--memory-only", action="store_true", help="only the IG-300 memory run")
  p.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.memory_child:
    return memory_child(args.memory_steps, args.memory_chunk, args.memory_unchunked)

  if args.memory_only:
    return run_memory(args)
  import torch  # pylint: disable=g-import-not-at-top
  import captum  # pylint: disable=g-import-not-at-top
  started = time.time()
  print(f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} | jax {jax.__version__} "
        f"{jax.devices()} | torch {torch.__version__}, {torch.get_num_threads()} threads | "
        f"captum {captum.__version__} | os.cpu_count {os.cpu_count()} | load average "
        f"{os.getloadavg()[0]:.1f}")
  model, note = load_model()
  if args.buckets:
    model = model.with_buckets(_buckets(args.buckets))
  print(f"model: {note}; jaxplain buckets {model.buckets}")
  texts = load_texts(args.data, args.n)
  batches, lengths = bucketed_batches(model, texts, args.batch)
  padded = sum(int(np.prod(b.input_ids.shape)) for _, b in batches)
  print(f"examples: {len(texts)}; real tokens per example: mean {lengths.mean():.1f}, "
        f"max {lengths.max()}; {len(batches)} batches of <= {args.batch}, padded lengths "
        f"{sorted({b.input_ids.shape[1] for _, b in batches})}; {lengths.sum()} real tokens "
        f"padded to {padded} ({100 * (1 - lengths.sum() / padded):.0f}% padding)")

  fine = None
  if args.fine_buckets:
    fine_model = model.with_buckets(_buckets(args.fine_buckets))
    fine_batches, _ = bucketed_batches(fine_model, texts, args.batch)
    fine_padded = sum(int(np.prod(b.input_ids.shape)) for _, b in fine_batches)
    fine = (fine_model, fine_batches)
    print(f"with --fine-buckets {fine_model.buckets}: padded lengths "
          f"{sorted({b.input_ids.shape[1] for _, b in fine_batches})}; {fine_padded} slots "
          f"({100 * (1 - lengths.sum() / fine_padded):.0f}% padding)")

  packed = None
  if args.pack:
    parts, layout, full = packed_batches(model, texts, args.pack)
    slots = sum(int(np.prod(b.input_ids.shape)) for _, b in parts)
    packed = (parts, layout, full)
    print(f"with --pack {args.pack}: {len(parts)} batches, shapes "
          f"{sorted({tuple(b.input_ids.shape) for _, b in parts})}, up to "
          f"{parts[0][1].packing.starts.shape[1]} examples per row; {slots} slots "
          f"({100 * (1 - lengths.sum() / slots):.1f}% padding)")

  torch_model = to_torch(model)
  check = batches[0][1]
  with torch.no_grad():
    theirs = torch_model(input_ids=torch.tensor(np.asarray(check.input_ids), dtype=torch.long),
                         attention_mask=torch.tensor(np.asarray(check.attention_mask)),
                         token_type_ids=torch.tensor(np.asarray(check.token_type_ids),
                                                     dtype=torch.long)).logits.numpy()
  ours = np.asarray(model.outputs(check).logits)
  print(f"same weights: max |logit jaxplain - logit torch| = {np.abs(ours - theirs).max():.2e}")

  peaks = [matmul_peak()]
  print(f"matmul peak (2048^3 f32 jnp.dot, best of 5): {peaks[0] / 1e9:.1f} GFLOP/s")
  runner = CaptumRunner(torch_model, model.tokenizer)
  rng = np.random.default_rng(0)
  captum_n = min(args.captum_n or len(texts), len(texts))
  single_n = min(args.single_n or captum_n, captum_n)
  subset = np.sort(rng.choice(len(texts), captum_n, replace=False))
  single_subset = np.sort(rng.choice(subset, single_n, replace=False))
  singles = [np.asarray([model.tokenizer(texts[j])["input_ids"]]) for j in single_subset]
  singles = [(i, np.ones_like(i), np.zeros_like(i)) for i in singles]
  sub = sorted(subset, key=lambda j: (lengths[j], j))
  sub_batches = []
  for s in range(0, len(sub), args.batch):
    enc = model.tokenizer([texts[j] for j in sub[s:s + args.batch]], padding=True,
                          return_tensors="np")
    sub_batches.append((enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]))
  mid = sub_batches[len(sub_batches) // 2]
  tune_batch = tuple(a[:args.tune_n] for a in mid)  # a cheap stand-in for a full batch
  print(f"Captum batched: {captum_n} of the examples in {len(sub_batches)} batches, each padded "
        f"to its longest; one at a time: {single_n} of those, no padding")

  work = lambda idx, passes: passes * sum(useful_flops(model.config, int(lengths[j])) for j in idx)
  results = {}
  for method in args.methods.split(","):
    name, hyper, passes = METHODS[method]
    useful = work(range(len(texts)), passes)
    calls, compile_s, shapes = prepare_jaxplain(model, batches, name, hyper, args.rows)
    runners = {"jaxplain": calls}
    if fine:
      runners["fine"], f_compile, f_shapes = prepare_jaxplain(fine[0], fine[1], name, hyper,
                                                              args.rows)
    if packed and name in PACKABLE:
      # The same jitted kernel: with target None on a packed batch it explains each slot's
      # predicted class (jaxplain.attribution._common.resolve_target / target_and_grad).
      runners["packed"], p_compile, p_shapes = prepare_jaxplain(model, packed[0], name, hyper)
      # The same scores as the bucketed batches' (checked once, untimed).
      mine = np.zeros(np.shape(packed[2].input_ids), np.float32)
      for (idx, _), call in zip(batches, calls):
        out = np.asarray(call(), np.float32)
        mine[idx, :out.shape[1]] = out
      theirs = unpack([np.asarray(call(), np.float32) for call in runners["packed"]], packed[1])
      print(f"[{method}] packed vs bucketed scores: max |difference| "
            f"{np.abs(mine - theirs).max():.1e} (max |score| {np.abs(mine).max():.2f})",
            flush=True)
    # Captum batched: tune internal_batch_size / nt_samples_batch_size on one mid-length batch.
    options = [None] if method == "gxi" else (
        [64, 32, 160] if method == "ig50" else [5, 2, 1])
    runner.run(method, *singles[0])  # warm-up (first-call overheads), untimed
    if args.tune_n > 0:
      tuned = {o: time_captum(runner, method, [tune_batch], o) for o in options}
    else:  # --tune-n 0: no tuning, the first option
      tuned = {options[0]: (0.0, 0.0)}
    best = min(tuned, key=lambda o: tuned[o][0])
    print(f"[{method}] Captum tuning on one batch of {len(tune_batch[0])}: "
          + ", ".join(f"{k}: {v[0]:.2f} s" for k, v in tuned.items()) + f" -> {best}", flush=True)
    runners["captum_batched"] = [
        lambda b=b: runner.run(method, *b, internal_batch_size=best) for b in sub_batches]
    rounds = max(len(batches), len(sub_batches))
    if "packed" in runners:  # fewer, larger batches: spread over the rounds
      at = np.linspace(0, rounds - 1, len(runners["packed"])).round().astype(int)
      spread = [None] * rounds
      for i, call in zip(at, runners["packed"]):
        spread[i] = call
      runners["packed"] = spread
    runners["captum_single"] = [
        lambda g=g: [runner.run(method, *singles[j]) for j in g]
        for g in np.array_split(np.arange(len(singles)), rounds)]
    timed = interleaved(runners)  # every runner's r-th batch in turn, for all r
    seconds, jx_cpu = timed["jaxplain"]
    cb, cb_cpu = timed["captum_batched"]
    cs, cs_cpu = timed["captum_single"]
    jx = len(texts) / seconds
    print(f"\n[{method}] jaxplain: {jx:.2f} ex/s ({seconds:.1f} s for {len(texts)}; compile + "
          f"first run {compile_s:.1f} s for {shapes} shapes); useful "
          f"{useful / seconds / 1e9:.1f} GFLOP/s", flush=True)
    packed_row = None
    if "packed" in timed:
      p_s, p_cpu = timed["packed"]
      packed_row = (len(texts) / p_s, useful / p_s, len(texts) / p_cpu)
      print(f"[{method}] jaxplain, packed: {len(texts) / p_s:.2f} ex/s ({p_s:.1f} s; "
            f"compile + first run {p_compile:.1f} s for {p_shapes} shapes)", flush=True)
    fine_row = None
    if fine:
      f_s, f_cpu = timed["fine"]
      fine_row = (len(texts) / f_s, useful / f_s, len(texts) / f_cpu)
      print(f"[{method}] jaxplain, fine buckets: {len(texts) / f_s:.2f} ex/s ({f_s:.1f} s; "
            f"compile + first run {f_compile:.1f} s for {f_shapes} shapes)", flush=True)
    print(f"[{method}] Captum batched: {captum_n / cb:.2f} ex/s ({cb:.1f} s)", flush=True)
    print(f"[{method}] Captum one at a time: {single_n / cs:.2f} ex/s ({cs:.1f} s)", flush=True)
    results[method] = dict(
        jaxplain=(jx, useful / seconds, len(texts) / jx_cpu),
        captum_batched=(captum_n / cb, work(subset, passes) / cb, captum_n / cb_cpu),
        captum_single=(single_n / cs, work(single_subset, passes) / cs, single_n / cs_cpu),
        compile_s=compile_s, captum_option=best, jaxplain_fine=fine_row,
        jaxplain_packed=packed_row)

  peaks.append(matmul_peak())
  peak = max(peaks)
  print(f"\nmatmul peak after the runs: {peaks[1] / 1e9:.1f} GFLOP/s; using the larger, "
        f"{peak / 1e9:.1f} GFLOP/s")
  print(f"\n| method | runner | N | examples/s | useful GFLOP/s | useful-FLOP util. | "
        f"jaxplain speed-up (ex/s) | (work-normalised) | examples per CPU-s | "
        f"speed-up per CPU-s |")
  print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
  for method, r in results.items():
    jx_rate, jx_flops, jx_cpu_rate = r["jaxplain"]
    rows = [("jaxplain (jit, bucketed)", len(texts), r["jaxplain"]),
            (f"Captum batched ({'internal' if method == 'ig50' else 'nt_samples'}_batch_size="
             f"{r['captum_option']})" if method != "gxi" else "Captum batched",
             captum_n, r["captum_batched"]),
            ("Captum one at a time", single_n, r["captum_single"])]
    if r["jaxplain_fine"]:
      rows.insert(1, ("jaxplain, fine buckets", len(texts), r["jaxplain_fine"]))
    if r["jaxplain_packed"]:
      rows.insert(1, ("jaxplain, packed", len(texts), r["jaxplain_packed"]))
    for label, n, (rate, flops, cpu_rate) in rows:
      ours = label.startswith("jaxplain")
      speed = "" if ours else f"{jx_rate / rate:.2f}x"
      norm = "" if ours else f"{jx_flops / flops:.2f}x"
      cpu = "" if ours else f"{jx_cpu_rate / cpu_rate:.2f}x"
      print(f"| {LABEL[method]} | {label} | {n} | {rate:.2f} | {flops / 1e9:.1f} | "
            f"{100 * flops / peak:.0f}% | {speed} | {norm} | {cpu_rate:.2f} | {cpu} |")
  for method, r in results.items():
    for what, key in (("fine buckets", "jaxplain_fine"), ("packing", "jaxplain_packed")):
      if not r[key]:
        continue
      f_rate, f_flops, f_cpu = r[key]
      print(f"{LABEL[method]}, jaxplain with {what}: "
            f"{f_rate / r['captum_batched'][0]:.2f}x Captum batched "
            f"({f_flops / r['captum_batched'][1]:.2f}x work-normalised, "
            f"{f_cpu / r['captum_batched'][2]:.2f}x per CPU-s), "
            f"{f_rate / r['captum_single'][0]:.2f}x one at a time "
            f"({f_flops / r['captum_single'][1]:.2f}x work-normalised, "
            f"{f_cpu / r['captum_single'][2]:.2f}x per CPU-s)")
  print(f"\nwall time of the comparison: {time.time() - started:.0f} s; load average now "
        f"{os.getloadavg()[0]:.1f}")

  if not args.skip_memory:
    run_memory(args)
  print("\nsummary:", json.dumps({k: {kk: (list(vv) if isinstance(vv, tuple) else vv)
                                      for kk, vv in v.items()} for k, v in results.items()}))


if __name__ == "__main__":
  main()
