"""XLA:CPU compile options for the model's jitted steps (training, evaluation, inference).

XLA:CPU hands matmuls to YNNPACK one dot at a time by default, so every elementwise epilogue (bias, GELU,
LeakyReLU, the attention bias/mask add) writes and re-reads a full-size intermediate. Letting YNNPACK fuse
those epilogues into the dots (`LIBRARY_FUSION_TYPE_DOT`, convolutions still individually) cut the step plans
(batch 4, 128², this 2-core CPU): MEF 9.4 → 6.5 GB, HDR 16.0 → 12.2 GB, at equal speed within this machine's
noise (default vs fused, interleaved runs: MEF 5.6–9.3 vs 5.8–8.9 s per step, HDR 11.3–12.9 vs 12.1–13.9 s); the parity fixtures
still match to 1e-5.

The option is experimental in XLA, so it is probed once with a trivial compile and dropped when this XLA
version does not know it; never applied on accelerators; a user's own XLA_FLAGS setting of it wins;
`MGDN_YNN_FUSION=0` turns it off.
"""
import functools
import os

import jax
import jax.numpy as jnp

_OPTION = 'xla_cpu_experimental_ynn_fusion_type'
_VALUE = 'LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION'


@functools.cache
def compiler_options() -> dict[str, str]:
  """The options to pass as `jax.jit(..., compiler_options=...)`; {} where they do not apply."""
  if os.environ.get('MGDN_YNN_FUSION', '1') == '0' or _OPTION in os.environ.get('XLA_FLAGS', ''):
    return {}
  if jax.default_backend() != 'cpu':
    return {}
  options = {_OPTION: _VALUE}
  try:
    jax.jit(lambda x: x + 1, compiler_options=options).lower(jnp.zeros((), jnp.float32)).compile()
  except jax.errors.JaxRuntimeError:  # an XLA that no longer (or not yet) has the option: default fusion
    return {}
  return options
