"""train.global_norm: one reduction over all leaves, equal to optax.global_norm."""
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mgdn_jax import train


def test_equals_optax_global_norm_over_mixed_leaves():
  keys = jax.random.split(jax.random.key(0), 4)
  tree = {'a': jax.random.normal(keys[0], (3, 3, 8, 8)), 'b': [jax.random.normal(keys[1], (17,)),
                                                               jax.random.normal(keys[2], (5, 4))],
          'c': jnp.float32(-2.5)}
  np.testing.assert_allclose(float(train.global_norm(tree)), float(optax.global_norm(tree)), rtol=1e-6)


def test_bfloat16_leaves_are_squared_in_float32():
  leaf = jax.random.normal(jax.random.key(1), (4096,), jnp.bfloat16)
  exact = np.sqrt(np.sum(np.square(np.asarray(leaf, np.float64))))
  np.testing.assert_allclose(float(train.global_norm({'x': leaf})), exact, rtol=1e-6)


def test_non_finite_leaf_gives_non_finite_norm():
  assert not np.isfinite(float(train.global_norm({'a': jnp.ones(4), 'b': jnp.array([1., jnp.inf])})))
  assert not np.isfinite(float(train.global_norm({'a': jnp.array([jnp.nan])})))
