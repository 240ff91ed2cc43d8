"""Corpus sweeps: every example of a data set explained on every device, resumably, to Parquet.

``corpus/`` is the only layer that knows about devices, hosts and output files. A sweep reads a
corpus in file order (:mod:`~jaxplain.corpus.read`), gives each process its slice and each
slice its shards (:mod:`~jaxplain.corpus.mesh`), buckets every shard by length
(:mod:`~jaxplain.corpus.buckets`), runs prediction, all methods and all metrics of a batch in one
compiled step laid out over the local device mesh (:mod:`~jaxplain.corpus.step`), and writes one
Parquet file per shard plus a manifest, atomically (:mod:`~jaxplain.corpus.output`).

Example::

    from jaxplain.corpus import make_config, sweep
    config = make_config(data={"source": "reviews.csv", "label_column": "label"},
                         output="sweep-out", methods={"ig": {"steps": 20}, "saliency": {}},
                         metrics=["comprehensiveness", "sufficiency"])
    print(sweep(config))
"""

from jaxplain.corpus.buckets import BatchPlan, PaddingStats, plan_batches
from jaxplain.corpus.mesh import (initialize_distributed, local_mesh, process_info,
                                  process_slice, round_up)
from jaxplain.corpus.output import OutputDir, OutputError, read_sweep
from jaxplain.corpus.plan import (METRIC_NAMES, SCHEMA_VERSION, DataSpec, SweepConfig,
                                  make_config, merge_config, read_config)
from jaxplain.corpus.read import Corpus, read_corpus
from jaxplain.corpus.step import SHARED_GRADIENT, sweep_step
from jaxplain.corpus.sweep import SweepSummary, corpus_digest, sweep

__all__ = [
    "METRIC_NAMES", "SCHEMA_VERSION", "SHARED_GRADIENT", "BatchPlan", "Corpus", "DataSpec",
    "OutputDir", "OutputError", "PaddingStats", "SweepConfig", "SweepSummary", "corpus_digest",
    "initialize_distributed", "local_mesh", "make_config", "merge_config", "plan_batches",
    "process_info", "process_slice", "read_config", "read_corpus", "read_sweep", "round_up",
    "sweep",
    "sweep_step",
]
