"""Runs one sweep in a fresh process (tests start it with their own XLA_FLAGS / process ids).

Usage: python _sweep_child.py CONFIG_JSON [--coordinator ADDR --num-processes N --process-id I]
[--pause-after-shard SECONDS] [--wait-for PATH]. CONFIG_JSON holds ``make_config`` keyword
arguments. The JSON summary of the sweep is the last line on stdout.

``--wait-for PATH``: import everything and load the model, then wait until PATH exists before
sweeping (a test starts all its processes at once, and those that should reuse programs another
one compiles into the persistent compilation cache wait for that one's output).
``--pause-after-shard``: sleep after each shard is written (lets a test kill us between shards).
"""

import argparse
import json
import os
import sys
import time


def wait_for(path: str, timeout_s: float = 900.0) -> None:
  deadline = time.monotonic() + timeout_s
  while not os.path.exists(path):
    if time.monotonic() > deadline:
      sys.exit(f"gave up waiting for {path}")
    time.sleep(0.1)


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("config")
  parser.add_argument("--coordinator")
  parser.add_argument("--num-processes", type=int)
  parser.add_argument("--process-id", type=int)
  parser.add_argument("--pause-after-shard", type=float, default=0.0)
  parser.add_argument("--wait-for")
  args = parser.parse_args()
  from jaxplain import corpus  # pylint: disable=g-import-not-at-top
  from jaxplain.corpus.sweep import _load_model  # pylint: disable=g-import-not-at-top
  if args.coordinator:
    corpus.initialize_distributed(args.coordinator, args.num_processes, args.process_id)
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update("jax_default_matmul_precision", "float32")
  with open(args.config) as f:
    config = corpus.make_config(**json.load(f))
  model = _load_model(config)
  if args.wait_for:
    wait_for(args.wait_for)

  def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
    if line.startswith("shard ") and args.pause_after_shard:
      time.sleep(args.pause_after_shard)

  summary = corpus.sweep(config, model=model, progress=False, log=log)
  print(json.dumps({"examples": summary.examples, "devices": summary.devices,
                    "shards_written": summary.shards_written,
                    "shards_skipped": summary.shards_skipped, "errors": summary.errors}))


if __name__ == "__main__":
  main()
