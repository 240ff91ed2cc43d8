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
   ``rules.gelu_exact`` writes its derivative out as a custom JVP), and in bfloat16 compute, all timed
   interleaved in one process (best and median of ``--repeats``).
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
"""

import argparse
import math
import os
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
from _common import load_texts, matmul_peak  # noqa: E402


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


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--rows", type=int, default=160)
  p.add_argument("--tokens", type=int, default=32)
  p.add_argument("--repeats", type=int, default=6)
  p.add_argument("--data", default=None, help="Rotten Tomatoes CSV for the padding count")
  p.add_argument("--n", type=int, default=512)
  p.add_argument("--only", choices=("chunks",), default=None,
                 help="run one section only (chunks: token rows per pass)")
  args = p.parse_args()
  print(f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} | jax {jax.__version__} | "
        f"load average {os.getloadavg()[0]:.1f}")
  model = jaxplain.default_model()
  if args.only == "chunks":
    return chunks(model, args.repeats)
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
  saved = rules.ACTIVATION_FNS["gelu"]  # the library's exact GELU, with its custom JVP
  rules.ACTIVATION_FNS["gelu"] = lambda x: jax.nn.gelu(x, approximate=False)
  try:
    programs["exact GELU by autodiff through erf (jax.nn.gelu)"] = grad_program(model, batch, emb)
  finally:
    rules.ACTIVATION_FNS["gelu"] = saved
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


if __name__ == "__main__":
  main()
