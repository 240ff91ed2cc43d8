"""Settings of the DiffMask toy-task reproduction (authors' ``ToyTask.ipynb`` unless noted)."""

import dataclasses

from jaxplain.attribution.diffmask import DiffMaskConfig


@dataclasses.dataclass(frozen=True)
class ToyConfig:
  data_size: int = 10_000        # authors: 10,000 sequences, 90/10 split
  model_epochs: int = 50         # authors: 50 epochs, Adam 1e-3, batch 128
  ig_steps: int = 500            # authors: 500
  seed: int = 0
  diffmask: DiffMaskConfig = DiffMaskConfig(
      variant="hidden",          # the notebook's ToyTaskModelDiffMask gates the state at index l
      margin=0.05,
      baseline="learned",
      baseline_init="mean",      # notebook: placeholder = mean hidden vector
      probe_width=32,            # MLPMaxGate(.., 32)
      batch_size=128,
      steps=7_000,               # 100 epochs of 70 batches
      learning_rate=3e-4,
      baseline_learning_rate=3e-4,  # one parameter group in the toy
      lambda_learning_rate=0.3,
      warmup_steps=200,
      eval_every=350,
      checkpoint_every=1_000,
      eval_size=1_000,
      eps_valid=float("inf"),    # toy selection: lowest val l0 (val_loss = l0), no thresholds
      acc_valid=0.0,
      seed=0,
  )


def get_config() -> ToyConfig:
  return ToyConfig()
