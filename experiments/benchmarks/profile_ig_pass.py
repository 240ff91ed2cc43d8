"""Where one IG pass spends its time on this CPU: the measurements behind bench_gradients' reading.

    python experiments/benchmarks/profile_ig_pass.py [--rows 160] [--tokens 32] [--repeats 6]
        [--data /work/shared/data/rotten_tomatoes_corpus_full.csv.bz2 --n 512] [--only chunks]

One IG chunk of the gradient benchmark is ``--rows`` interpolated inputs (5 steps x 32 examples)
of ``--tokens`` tokens through the default model: the gradient of the target logit with respect
to the word embeddings. Printed, each from this run:

1. XLA's executed FLOPs for that gradient when the program reads only the logits, and when it
   also reads ``hidden[L]`` (which keeps the full last layer alive): what the [CLS]-only pass
   through the last layer saves.
2. The forward alone and the forward + backward, in ms and GFLOP/s against a matmul peak measured
   on the spot, so the backward's own rate follows by difference.
3. The same gradient compiled with other XLA CPU options (YNNPACK fusion types, XNNPACK off; the
   ``default`` line is XLA's defaults, while jaxplain's own kernels compile with the
   ``INDIVIDUAL_DOT`` fusion type on the CPU, ``jaxplain/_compile.py``), with
   the exact GELU differentiated by autodiff through ``erf`` (``jax.nn.gelu``; the library's
   ``rules.gelu_exact`` writes its derivative out as a custom JVP and wraps it in
   ``jax.checkpoint``), with that custom JVP but no ``jax.checkpoint``, and in bfloat16 compute,
   all timed interleaved in one process (best and median of ``--repeats``).
4. An XLA matmul started right after a PyTorch matmul vs after 0.5 s idle (PyTorch's OpenMP
   threads spin after their work; bench_gradients therefore settles before each timed call).
   Skipped without torch.
5. With ``--data``: the padding of ``--n`` snippets in sorted batches of 32 for buckets in steps
   of 8 (the library's), steps of 4, and each batch padded to its own longest text.
6. ``[chunks]``: the library's ``integrated_gradients`` (10 steps) on batches of 32 x 32 and
   32 x 56 tokens with ``chunk_size`` 1, 2, 3, 5 and 10, i.e. 1-18k token rows per vmapped pass,
   interleaved: time per token-step against the rows per pass (what ``chunk_size="auto"``'s CPU
   budget, ``_quadrature.CPU_TOKEN_ROWS``, rests on), and each program's compile time (chunks
   of 3 leave a remainder step, compiled as a second copy of the step).
   ``--only chunks`` runs just this part.
7. ``[ops]``: one gradient call compiled as the library compiles it, traced with the JAX profiler,
   its time summed by kind of operation: dense matmuls (projections, feed-forward), per-head
   attention matmuls, the feed-forward activation, layout copies, the rest; with the matmul
   FLOPs of each kind and their rate against the peak. ``--only ops`` runs just this part.
"""

import argparse
import math
import os
import re
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

import jaxplain  # noqa: E402
from jaxplain.contracts import Taps  # noqa: E402
from jaxplain.models import rules  # noqa: E402
from jaxplain.models.model import model_from_params  # noqa: E402
from _common import load_texts, matmul_peak, swapped_activation  # noqa: E402


def inputs(model, rows, tokens):
  text = "a fine film , with a great cast and a dull script that drags on " * 4
  batch = model.encode([text] * rows)
  batch = jax.tree.map(lambda a: a[:, :tokens] if a.ndim == 2 else a, batch)
  return batch, model.forward(model.params, batch, Taps()).word_embeddings


def grad_program(model, batch, emb, also_hidden=False, options=None):
  fwd = model.forward

  def objective(e, p, b):
    out = fwd(p, b, Taps(word_embeddings=e))
    value = out.logits[:, 1].sum()
    return value + 0.0 * out.hidden[-1].sum() if also_hidden else value

  return jax.jit(jax.grad(objective)).lower(emb, model.params, batch).compile(
      compiler_options=options)


def timed(programs: dict, args: dict, repeats: int) -> dict:
  """``{name: [seconds, ...]}``, the programs called in turn ``repeats`` times (first dropped)."""
  for name, c in programs.items():
    jax.block_until_ready(c(*args[name]))
  out = {k: [] for k in programs}
  for _ in range(repeats + 1):
    for name, c in programs.items():
      t0 = time.perf_counter()
      jax.block_until_ready(c(*args[name]))
      out[name].append(time.perf_counter() - t0)
  return {k: v[1:] for k, v in out.items()}


def padding(path, n):
  from _common import load_model  # pylint: disable=g-import-not-at-top
  model, _ = load_model()
  texts = load_texts(path, n)
  lengths = np.sort([len(model.tokenizer(t)["input_ids"]) for t in texts])
  rounders = {"steps of 8 (library buckets)": lambda m: max(16, math.ceil(m / 8) * 8),
              "steps of 4": lambda m: max(12, math.ceil(m / 4) * 4),
              "each batch's longest text": lambda m: m}
  print(f"\n[padding] {len(texts)} snippets, {lengths.sum()} real tokens, sorted batches of 32")
  for name, f in rounders.items():
    slots = sum(f(lengths[s:s + 32].max()) * len(lengths[s:s + 32])
                for s in range(0, len(lengths), 32))
    print(f"  {name:28s} {slots} slots, {100 * (1 - lengths.sum() / slots):.1f}% padding")


def chunks(model, repeats: int) -> None:
  """Section 6: seconds per token-step of IG-10 against the token rows of one vmapped pass."""
  from jaxplain.api import compiled  # pylint: disable=g-import-not-at-top
  key = jax.random.key(0)
  print(f"\n[chunks] integrated_gradients, 10 steps, batches of 32; median of {repeats} "
        "interleaved calls; chunk_size -> token rows per pass: us per token-step")
  for tokens in (32, 56):
    batch, _ = inputs(model, 32, tokens)
    programs, call_args, compile_s = {}, {}, {}
    for chunk in (1, 2, 3, 5, 10):
      fn = compiled("integrated_gradients", (("chunk_size", chunk), ("steps", 10)), model.forward)
      t0 = time.perf_counter()
      programs[chunk] = fn.lower(model.params, batch, None, key).compile()
      compile_s[chunk] = time.perf_counter() - t0
      call_args[chunk] = (model.params, batch, None, key)
    t = timed(programs, call_args, repeats)
    per = {c: statistics.median(ts) / (10 * 32 * tokens) * 1e6 for c, ts in t.items()}
    best = min(per.values())
    print(f"  32 x {tokens}: " + "; ".join(
        f"{c} -> {c * 32 * tokens} rows: {v:.0f} us ({v / best:.2f}x best)" for c, v in per.items()))
    print(f"  32 x {tokens} compile: " + "; ".join(
        f"chunks of {c}{' + remainder' if 10 % c else ''} {s:.1f} s" for c, s in compile_s.items()))


_SHAPE = re.compile(r"%([\w.\-]+) = f32\[([\d,]*)\]")
_LINE = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = f32\[([\d,]*)\][^\n]*", re.M)
_DOT = re.compile(r"%([\w.\-]+) = f32\[([\d,]*)\]\S* dot\((?:f32\[[\d,]*\]\S* )?%([\w.\-]+), "
                  r"[^)]*\), (lhs_batch_dims=\{[\d,]*\}, )?lhs_contracting_dims=\{([\d,]*)\}")


def _op_kinds(hlo: str, intermediate: int) -> dict[str, tuple[str, float]]:
  """``{instruction: (kind, matmul FLOPs)}`` for the f32 instructions of a compiled program.

  A fusion or instruction holding a dot is a matmul (per-head when the dot has batch dimensions);
  a ``transpose``/``copy`` is a layout copy; any other op whose result has the feed-forward's
  intermediate width is counted as the activation (in these programs: GELU and its derivative).
  """
  shapes = {n: [int(d) for d in s.split(",") if d] for n, s in _SHAPE.findall(hlo)}
  bodies = dict(re.findall(r"^%([\w.\-]+) [^\n]*\{\n(.*?)\n\}", hlo, re.M | re.S))
  kinds = {}
  for m in _LINE.finditer(hlo):
    name, shape, line = m.group(1), m.group(2), m.group(0)
    called = re.search(r"calls=%([\w.\-]+)", line)
    found = [(bool(batch), 2 * math.prod(shapes[out]) * math.prod(
        shapes[lhs][int(c)] for c in contracting.split(",")))
             for out, _, lhs, batch, contracting in _DOT.findall(
                 bodies.get(called.group(1), "") if called else line)]
    if found:
      kind = "per-head attention matmuls" if found[0][0] else "dense matmuls"
    elif name.startswith(("transpose", "copy")):
      kind = "layout copies (transposes)"
    elif str(intermediate) in shape.split(","):
      kind = "feed-forward activation (GELU, derivative)"
    else:
      kind = "other (LayerNorm, softmax, residuals, ...)"
    kinds[name] = (kind, float(sum(f for _, f in found)))
  return kinds


def ops(model, rows: int, tokens: int, repeats: int, peak: float) -> None:
  """Section 7: the gradient's time by kind of operation, from a profiler trace."""
  import glob  # pylint: disable=g-import-not-at-top
  import gzip  # pylint: disable=g-import-not-at-top
  import json  # pylint: disable=g-import-not-at-top
  import tempfile  # pylint: disable=g-import-not-at-top
  from jaxplain import _compile  # pylint: disable=g-import-not-at-top
  batch, emb = inputs(model, rows, tokens)
  options = _compile.compiler_options()
  grad = grad_program(model, batch, emb, options=options)
  a = (emb, model.params, batch)
  untraced = statistics.median(timed({"g": grad}, {"g": a}, repeats)["g"])
  with tempfile.TemporaryDirectory() as log:
    t0 = time.perf_counter()
    jax.profiler.start_trace(log, create_perfetto_trace=True)
    for _ in range(repeats):
      jax.block_until_ready(grad(*a))
    jax.profiler.stop_trace()
    wall = (time.perf_counter() - t0) / repeats
    trace = glob.glob(os.path.join(log, "**", "*.trace.json.gz"), recursive=True)
    events = []
    if trace:
      with gzip.open(trace[0]) as f:
        events = json.load(f)["traceEvents"]
  kinds = _op_kinds(grad.as_text(), model.config.intermediate_size)
  ms, count, flops = {}, {}, {}
  for e in events:
    if e.get("ph") == "X" and e.get("name") in kinds:
      kind, f = kinds[e["name"]]
      ms[kind] = ms.get(kind, 0.0) + e.get("dur", 0) / 1e3 / repeats
      count[kind] = count.get(kind, 0) + 1 / repeats
      flops[kind] = flops.get(kind, 0.0) + f / repeats
  total = sum(ms.values())
  print(f"\n[ops] one gradient call, {rows} rows x {tokens} tokens, compiled with "
        f"{options or 'XLA defaults'}; matmul peak {peak / 1e9:.0f} GFLOP/s; "
        f"{untraced * 1e3:.0f} ms per call (median of {repeats}), {wall * 1e3:.0f} ms traced; "
        f"{total:.0f} ms of op time in the trace (XLA may run two ops at once, one per core: "
        f"each counts its whole duration)")
  for kind in sorted(ms, key=ms.get, reverse=True):
    rate = flops[kind] / ms[kind] * 1e3  # FLOP/s
    rate = (f", {flops[kind] / 1e9:.1f} GFLOP at {rate / 1e9:.0f} GFLOP/s ({rate / peak:.0%} of "
            f"the peak)") if flops[kind] else ""
    print(f"  {kind:44s} {ms[kind]:7.1f} ms ({100 * ms[kind] / total:4.1f}%), "
          f"{count[kind]:.0f} ops{rate}")


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--rows", type=int, default=160)
  p.add_argument("--tokens", type=int, default=32)
  p.add_argument("--repeats", type=int, default=6)
  p.add_argument("--data", default=None, help="Rotten Tomatoes CSV for the padding count")
  p.add_argument("--n", type=int, default=512)
  p.add_argument("--only", choices=("chunks", "ops"), default=None,
                 help="run one section only (chunks: token rows per pass; ops: time by kind of "
                      "operation)")
  args = p.parse_args()
  print(f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} | jax {jax.__version__} | "
        f"load average {os.getloadavg()[0]:.1f}")
  model = jaxplain.default_model()
  if args.only == "chunks":
    return chunks(model, args.repeats)
  if args.only == "ops":
    return ops(model, args.rows, args.tokens, args.repeats, matmul_peak())
  batch, emb = inputs(model, args.rows, args.tokens)
  peak = matmul_peak()
  print(f"one IG chunk: {args.rows} rows x {args.tokens} tokens; matmul peak {peak / 1e9:.1f} "
        f"GFLOP/s")

  # 1. What the [CLS]-only last layer saves.
  grad = grad_program(model, batch, emb)
  flops = grad.cost_analysis()["flops"]
  with_hidden = grad_program(model, batch, emb, also_hidden=True).cost_analysis()["flops"]
  print(f"\n[flops] gradient reading the logits only: {flops / 1e9:.1f} GFLOP; also reading "
        f"hidden[L] (full last layer): {with_hidden / 1e9:.1f} GFLOP "
        f"({100 * (1 - flops / with_hidden):.1f}% fewer)")

  # 2. Forward vs forward + backward.
  fwd = jax.jit(lambda e, p, b: model.forward(p, b, Taps(word_embeddings=e)).logits)
  fwd_c = fwd.lower(emb, model.params, batch).compile()
  fwd_flops = fwd_c.cost_analysis()["flops"]
  a = (emb, model.params, batch)
  t = timed({"forward": fwd_c, "gradient": grad}, {"forward": a, "gradient": a}, args.repeats)
  tf, tg = min(t["forward"]), min(t["gradient"])
  print(f"[rates] forward {tf * 1e3:.0f} ms, {fwd_flops / tf / 1e9:.0f} GFLOP/s "
        f"({100 * fwd_flops / tf / peak:.0f}% of the peak); forward + backward {tg * 1e3:.0f} ms, "
        f"{flops / tg / 1e9:.0f} GFLOP/s; backward alone by difference "
        f"{(flops - fwd_flops) / (tg - tf) / 1e9:.0f} GFLOP/s "
        f"({100 * (flops - fwd_flops) / (tg - tf) / peak:.0f}% of the peak)")

  # 3. Variants, interleaved.
  programs = {"default": grad}
  for key, value in (("xla_cpu_experimental_ynn_fusion_type", "LIBRARY_FUSION_TYPE_DOT"),
                     ("xla_cpu_experimental_ynn_fusion_type",
                      "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"),
                     ("xla_cpu_use_xnnpack", "False")):
    try:
      programs[f"{key}={value}"] = grad_program(model, batch, emb, options={key: value})
    except Exception as e:  # pylint: disable=broad-except  # an option this jaxlib lacks
      print(f"  ({key}={value} not accepted: {str(e).splitlines()[0][:100]})")
  # The library's exact GELU is a custom JVP under jax.checkpoint; two alternatives:
  with swapped_activation("gelu", lambda x: jax.nn.gelu(x, approximate=False)):
    programs["exact GELU by autodiff through erf (jax.nn.gelu)"] = grad_program(model, batch, emb)
  with swapped_activation("gelu", rules._gelu_exact):  # pylint: disable=protected-access
    programs["custom-JVP GELU without jax.checkpoint"] = grad_program(model, batch, emb)
  bf16 = model_from_params(model.config.replace(dtype="bfloat16"), model.params, model.tokenizer,
                           model.labels, name="bfloat16")
  programs["bfloat16 compute"] = grad_program(bf16, batch, emb)
  call_args = {k: a for k in programs}
  g32 = np.asarray(grad(*a))
  g16 = np.asarray(programs["bfloat16 compute"](*a))
  t = timed(programs, call_args, args.repeats)
  print(f"\n[variants] {args.repeats} calls each, interleaved (bfloat16 gradient within "
        f"{100 * np.abs(g16 - g32).max() / np.abs(g32).max():.2f}% of the largest float32 value)")
  for name, ts in t.items():
    print(f"  {name:62s} best {min(ts) * 1e3:6.0f} ms  median {statistics.median(ts) * 1e3:6.0f} "
          f"ms  ({min(t['default']) / min(ts):.2f}x default)")

  # 4. PyTorch's spinning threads.
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    print("\n[spin] torch not installed: skipped")
  else:
    m = torch.randn(2048, 2048)
    x = jnp.ones((1536, 1536))
    mm = jax.jit(lambda y: y @ y)
    jax.block_until_ready(mm(x))
    after = {"right after a PyTorch matmul": [], "after 0.5 s idle": []}
    for _ in range(args.repeats):
      for name in after:
        _ = m @ m
        if name.startswith("after 0.5"):
          time.sleep(0.5)
        t0 = time.perf_counter()
        jax.block_until_ready(mm(x))
        after[name].append(time.perf_counter() - t0)
    print("\n[spin] XLA 1536^3 matmul, median of " + str(args.repeats) + ": " + "; ".join(
        f"{k} {statistics.median(v) * 1e3:.0f} ms" for k, v in after.items()))

  if args.data:
    padding(args.data, args.n)
  chunks(model, args.repeats)
  ops(model, args.rows, args.tokens, args.repeats, peak)


if __name__ == "__main__":
  main()
