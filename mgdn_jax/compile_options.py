"""XLA:CPU compile options for the jitted training step (forward + backward).

XLA:CPU hands matmuls to YNNPACK one dot at a time by default, so every elementwise epilogue (bias, GELU,
LeakyReLU, the attention bias/mask add) writes and re-reads a full-size intermediate. Letting YNNPACK fuse
those epilogues into the dots (`LIBRARY_FUSION_TYPE_DOT`, convolutions still individually) cut the step plans
(batch 4, 128², this 2-core CPU): MFF 3.1 → 1.9 GB, MEF 9.4 → 6.5 GB, HDR 16.0 → 12.2 GB, at equal speed within
this machine's noise (default vs fused, interleaved runs: MEF 5.6–9.3 vs 5.8–8.9 s per step, HDR 11.3–12.9 vs
12.1–13.9 s); the gradient parity tests compile with it and still pass.

Not for forward-only programs: the same option made untiled HDR inference at 500×750 plan 7.4 GB instead of
3.0 GB and run 25.2 s instead of 23.1 s, and at 1000×1500 ask for 30.5 GB (out of memory) instead of 12.0 GB —
so inference and evaluation compile with XLA's defaults.

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
def train_compiler_options() -> dict[str, str]:
  """The options to pass as `jax.jit(train_step, compiler_options=...)`; {} where they do not apply."""
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
