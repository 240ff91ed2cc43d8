"""One ``jaxplain.attribute(model, texts, method)`` call end to end, in each layout, vs Captum.

    python experiments/benchmarks/bench_attribute_call.py [--n 512]
        [--method ig50|gxi|smoothgrad10|lgxa|lig50|attcat|rollout|gae|mask_lrp]
        [--layouts one,grouped,packed]
        [--captum-n N] [--data PATH] [--cache]

What a user gets from a single call on a list of texts, compile included: each layout runs in a
fresh Python process (no compiled program carried over), which loads the default model, reads
the ``--n`` Rotten Tomatoes snippets (the seeded sample of ``bench_gradients.py``) and times one
``jaxplain.attribute`` call:

- ``one``: ``pack=False, batch_size=n``: every text padded to the longest text's bucket, in one
  call (what ``attribute`` did before 2026-12-07);
- ``grouped``: ``pack=False``: length-sorted calls of about 2048 token rows on the CPU, each padded
  to a bucket (``jaxplain.models.length_groups``);
- ``packed``: the default, ``pack="auto"``, which packs these methods (sequence packing;
  SmoothGrad since 2026-12-07 09:00 UTC, the layer variants since 2026-12-07 11:00 UTC).

Per layout it prints the call's wall time, the time spent tracing, lowering and compiling inside
it (``jax.monitoring``'s compile events), the compiled shapes, the share of computed token slots
that are padding, and the process's peak resident memory (``VmHWM``). Captum
``LayerIntegratedGradients`` (``--method ig50``) or ``InputXGradient`` (``gxi``) then runs on the
same weights in this process (``smoothgrad10``: ``NoiseTunnel(Saliency)``, 10 samples, stdev
0.15, all 10 in one batch; ``lgxa``: ``LayerGradientXActivation`` on the embeddings and the 6
encoder layers in one pass; ``lig50``: ``LayerIntegratedGradients`` on each of the 7 in turn,
against jaxplain's Captum-exact ``path="layer"``), batched as ``bench_gradients.py``'s batched
row (length-sorted batches of 32, each padded to its own longest text, IG
``internal_batch_size=64``), after one untimed warm-up batch, on ``--captum-n`` of the texts; the ratios are texts/s against texts/s.
The layouts run one after another, not interleaved: compare them within one run, on an idle
machine. Scores of every layout are checked against the ``one`` layout's.

``--cache``: every child first calls ``jaxplain.enable_compilation_cache`` on one new, empty
directory, and each layout runs twice, in two fresh processes: the first compiles and fills the
cache, the second (``warm``) loads its programs from it, as a rerun of a script would.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

LAYOUTS = {"one": dict(pack=False, batch_size="n"), "grouped": dict(pack=False),
           "packed": dict()}
COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
                  "/jax/core/compile/jaxpr_to_mlir_module_duration",
                  "/jax/core/compile/backend_compile_duration")
METHODS = {"ig50": ("integrated_gradients", dict(steps=50)), "gxi": ("gradient_x_input", {}),
           "smoothgrad10": ("smoothgrad", dict(samples=10, stdev=0.15)),
           "lgxa": ("layer_gradient_x_activation", {}),
           # Captum-exact layer IG (an IG run from each of the L+1 hidden states), as Captum runs.
           "lig50": ("layer_integrated_gradients", dict(steps=50, path="layer")),
           # No Captum counterpart: run with --captum-n 0 (the layouts against each other).
           "attcat": ("attcat", {}), "rollout": ("rollout", {}),
           "gae": ("gae", {}), "mask_lrp": ("mask_lrp", {})}


def child(args) -> None:
  """One layout in this fresh process; prints one JSON line."""
  import jax  # pylint: disable=g-import-not-at-top
  import jaxplain  # pylint: disable=g-import-not-at-top
  import jaxplain.api as api  # pylint: disable=g-import-not-at-top
  from _common import load_model, load_texts  # pylint: disable=g-import-not-at-top
  from bench_gradients import peak_rss_gib  # pylint: disable=g-import-not-at-top

  compile_s = []
  jax.monitoring.register_event_duration_secs_listener(
      lambda event, secs, **_: compile_s.append(secs) if event in COMPILE_EVENTS else None)
  shapes, slots = set(), [0]

  def spy(real):
    def wrapped(*a, **k):
      batch = next(x for x in a if isinstance(x, jaxplain.Batch))
      shapes.add(tuple(np.shape(batch.input_ids)))
      slots[0] += int(np.prod(np.shape(batch.input_ids)))
      return real(*a, **k)
    return wrapped

  if args.cache_dir:
    jaxplain.enable_compilation_cache(args.cache_dir)
  model, _ = load_model()
  texts = load_texts(args.data, args.n)
  name, hyper = METHODS[args.method]
  options = {k: (len(texts) if v == "n" else v) for k, v in LAYOUTS[args.layout].items()}
  api._attribute_batch = spy(api._attribute_batch)  # pylint: disable=protected-access
  real_pack = api.pack_batch

  def pack_spy(batch, row_length, rows):
    parts, layout = real_pack(batch, row_length, rows)
    for p in parts:
      shapes.add(tuple(p.input_ids.shape))
      slots[0] += int(np.prod(p.input_ids.shape))
    return parts, layout

  api.pack_batch = pack_spy
  t0 = time.perf_counter()
  a = jaxplain.attribute(model, texts, name, target=None, **options, **hyper)
  wall = time.perf_counter() - t0
  real = int(a.attention_mask.sum())
  np.save(args.scores, a.extra.get("layers", a.scores))  # every layer's rows, if it has them
  print(json.dumps(dict(layout=args.layout, wall=wall, compile=sum(compile_s),
                        shapes=sorted(shapes), slots=slots[0], real=real,
                        rss=peak_rss_gib())))


def captum_rate(args, texts) -> float:
  """Texts/s of Captum on ``texts``: length-sorted batches of 32, each padded to its longest."""
  from _common import load_model, to_torch  # pylint: disable=g-import-not-at-top
  from bench_gradients import CaptumRunner  # pylint: disable=g-import-not-at-top
  model, _ = load_model()
  runner = CaptumRunner(to_torch(model), model.tokenizer)
  tok = model.tokenizer
  order = np.argsort([len(tok(t)["input_ids"]) for t in texts], kind="stable")
  batches = []
  for s in range(0, len(order), 32):
    enc = tok([texts[i] for i in order[s:s + 32]], padding=True, return_tensors="np")
    batches.append((enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]))
  runner.run(args.method, *batches[len(batches) // 2], internal_batch_size=64)  # warm-up
  t0 = time.perf_counter()
  for b in batches:
    runner.run(args.method, *b, internal_batch_size=64)
  return len(texts) / (time.perf_counter() - t0)


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--data", default="/work/shared/data/rotten_tomatoes_corpus_full.csv.bz2")
  p.add_argument("--n", type=int, default=512)
  p.add_argument("--method", default="ig50", choices=sorted(METHODS))
  p.add_argument("--layouts", default="one,grouped,packed")
  p.add_argument("--captum-n", type=int, default=None,
                 help="texts Captum runs on (default: all --n; 0 skips Captum)")
  p.add_argument("--cache", action="store_true",
                 help="run each layout twice with a persistent compilation cache: cold, warm")
  p.add_argument("--cache-dir", help=argparse.SUPPRESS)
  p.add_argument("--layout", help=argparse.SUPPRESS)
  p.add_argument("--scores", help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.layout:
    return child(args)
  import jax  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  print(f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} | jax {jax.__version__} | "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads | os.cpu_count "
        f"{os.cpu_count()} | load average {os.getloadavg()[0]:.1f} | {args.n} texts, "
        f"{args.method}")
  rows, scores = {}, {}
  cache = tempfile.mkdtemp(prefix="bench_attribute_call_cache_") if args.cache else None
  runs = [(layout, warm) for layout in args.layouts.split(",")
          for warm in ((False, True) if cache else (False,))]
  for layout, warm in runs:
    label = layout + (" warm" if warm else "")
    path = f"/tmp/bench_attribute_call_{os.getpid()}_{layout}.npy"
    out = subprocess.run([sys.executable, __file__, "--layout", layout, "--scores", path,
                          "--n", str(args.n), "--method", args.method, "--data", args.data]
                         + (["--cache-dir", cache] if cache else []),
                         check=True, capture_output=True, text=True).stdout
    rows[label] = json.loads(out.strip().splitlines()[-1])
    scores[label] = np.load(path)
    os.remove(path)
    r = rows[label]
    print(f"{label:8s} {r['wall']:7.1f} s wall ({args.n / r['wall']:5.2f} texts/s), compile "
          f"{r['compile']:5.1f} s, {len(r['shapes'])} shapes {r['shapes']}, padding "
          f"{1 - r['real'] / r['slots']:.1%} of {r['slots']} slots, peak RSS {r['rss']:.2f} GiB",
          flush=True)
  if cache:
    shutil.rmtree(cache, ignore_errors=True)
  first = next(iter(scores))
  for layout, s in scores.items():
    if layout != first:
      top = np.abs(scores[first]).max()
      print(f"max |{layout} - {first}| score difference: "
            f"{np.abs(s - scores[first]).max():.2e} (max |score| {top:.2e})")
  captum_n = args.n if args.captum_n is None else args.captum_n
  if captum_n:
    from _common import load_texts  # pylint: disable=g-import-not-at-top
    texts = load_texts(args.data, args.n)[:captum_n]
    rate = captum_rate(args, texts)
    print(f"captum   batched {rate:.2f} texts/s on {captum_n} texts (warm; no compile)")
    for layout, r in rows.items():
      print(f"  {layout:8s} call, compile included: {args.n / r['wall'] / rate:.2f}x Captum "
            f"batched; without its compile time: "
            f"{args.n / (r['wall'] - r['compile']) / rate:.2f}x")
  for layout in ("grouped", "packed"):
    if layout in rows and "one" in rows:
      print(f"{layout} vs one call: {rows['one']['wall'] / rows[layout]['wall']:.2f}x faster")


if __name__ == "__main__":
  main()
