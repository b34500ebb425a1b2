"""The μ-law tonemap T(x) = log(1 + μx) / log(1 + μ) (Kalantari & Ramamoorthi 2017; MGDN's HDR loss and metrics).

One formula in two forms, side by side:
* `mu_law` (numpy) for the metrics, the fuse preview and the display panels: float32 arithmetic exactly as the
  official torch evaluation computes it, log(1 + μx) divided by log(1 + μ) rounded to float32;
* `mu_law_jax` for the loss inside the jitted step: float32, log1p.
They agree to float32 rounding (tests/losses_test.py). Neither clamps: HDR values above 1 map above 1, and the
callers that make 8-bit pictures clamp after tonemapping.
"""
import math

import numpy as np

MU = 5000.


def mu_law(x: np.ndarray, mu: float = MU) -> np.ndarray:
  """T(x) in float32 numpy, the official evaluation's precision."""
  x = np.asarray(x, np.float32)
  return (np.log(np.float32(1.) + np.float32(mu) * x) / np.float32(np.log(1. + mu))).astype(np.float32)


def mu_law_jax(x, mu: float = MU):
  """T(x) in float32 jax (any input dtype); traced inside the training step."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top  (the numpy form stays usable without jax)
  return jnp.log1p(mu * x.astype(jnp.float32)) / math.log1p(mu)
