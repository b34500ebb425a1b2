"""mgdn_jax/flat_params.py: the elementwise update over flat vectors gives the per-array update exactly."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mgdn_jax import flat_params


def _trees(seed=0):
  rng = np.random.default_rng(seed)
  model = {'conv': {'kernel': rng.normal(size=(3, 3, 4, 5)), 'bias': rng.normal(size=(5,))},
           'blocks': [{'w': rng.normal(size=(5, 7))}, {'w': rng.normal(size=(7, 5))}]}
  mi = {'proj': {'kernel': rng.normal(size=(1, 1, 5, 2))}, 'scale': rng.normal(size=(2,))}
  as_f32 = lambda t: jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), t)
  return as_f32(model), as_f32(mi)


def test_ravel_and_unravel_are_inverse_over_a_training_state():
  model, mi = _trees()
  trainable = {'model': model, 'mi': mi}
  state = {'params': model, 'mi_params': mi, 'opt_state': optax.adam(1e-3).init(trainable), 'ema': model,
           'step': jnp.int32(3)}
  flat = flat_params.Flattener(model, mi)
  raveled = flat.ravel(state)
  assert raveled['params'].shape == (3 * 3 * 4 * 5 + 5 + 35 + 35,) and raveled['mi_params'].shape == (12,)
  assert raveled['opt_state'][0].mu['model'].shape == raveled['params'].shape  # Adam's μ and ν follow
  assert raveled['step'] is state['step']  # what has neither structure stays as it is
  back = flat.unravel(raveled, state)
  assert jax.tree.structure(back) == jax.tree.structure(state)
  for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(state)):
    np.testing.assert_array_equal(a, b)


def test_adam_and_ema_on_flat_vectors_equal_the_per_array_update():
  model, mi = _trees(1)
  grads = {'model': _trees(2)[0], 'mi': _trees(2)[1]}
  trainable = {'model': model, 'mi': mi}
  tx = optax.adam(1e-2)
  opt = tx.init(trainable)
  for _ in range(2):  # a second step, so μ and ν are not zero
    per_array, opt_next = tx.update(grads, opt, trainable)
    expected = optax.apply_updates(trainable, per_array)
    flat = flat_params.Flattener(model, mi)
    updates, flat_opt = tx.update(flat.ravel(grads), flat.ravel(opt), flat.ravel(trainable))
    got = flat.unravel(optax.apply_updates(flat.ravel(trainable), updates), trainable)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
      np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree.leaves(flat.unravel(flat_opt, opt)), jax.tree.leaves(opt_next)):
      np.testing.assert_array_equal(a, b)
    trainable, opt = expected, opt_next


def test_one_dtype_per_structure():
  with pytest.raises(ValueError, match='one dtype per structure'):
    flat_params.Flattener({'a': jnp.zeros(2, jnp.float32), 'b': jnp.zeros(2, jnp.bfloat16)})
