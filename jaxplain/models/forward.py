"""The pure model function: ``forward(params, batch, taps) -> Outputs``.

The encoder is authored in Flax NNX and split once into a static graph and a parameter pytree;
``make_forward(graphdef)`` returns the pure function the rest of the library calls. Create it
once per model and reuse it: ``functools.partial`` objects hash by identity, so a new one per call
would be a new jit cache key and a recompile.
"""

import functools

from flax import nnx

from jaxplain.contracts import Batch, Forward, Outputs, Params, Taps
from jaxplain.models.config import EncoderConfig
from jaxplain.models.encoder import Encoder


def _apply(graphdef: nnx.GraphDef, params: Params, batch: Batch, taps: Taps = Taps()) -> Outputs:
  return nnx.merge(graphdef, params)(batch, taps)


def make_forward(graphdef: nnx.GraphDef) -> Forward:
  """``forward(params, batch, taps=Taps()) -> Outputs`` for the encoder described by ``graphdef``."""
  return functools.partial(_apply, graphdef)


def init_encoder(config: EncoderConfig, seed: int = 0) -> tuple[Forward, Params]:
  """A randomly initialised encoder (tests, toy models): ``(forward, params)``."""
  graphdef, params = nnx.split(Encoder(config, rngs=nnx.Rngs(seed)))
  return make_forward(graphdef), params


def abstract_encoder(config: EncoderConfig) -> tuple[nnx.GraphDef, Params]:
  """The encoder's graph and parameter shapes, without allocating parameters."""
  return nnx.split(nnx.eval_shape(lambda: Encoder(config, rngs=nnx.Rngs(0))))
