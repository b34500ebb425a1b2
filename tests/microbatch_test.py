"""Micro-batched training step: the same loss and gradient as the whole batch, no batch rows moved between the
8 devices, the auto rule, and one-line errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import mef
from mgdn_jax import microbatch
from mgdn_jax import platform
from mgdn_jax import sharding
from mgdn_jax import train


def _config(batch, microbatch_size):
  config = mef.get_config('tiny')
  config.batch_size = batch
  config.microbatch_size = microbatch_size
  config.model.drop_path_rate = 0.  # DropPath draws per micro-batch; off, both splits compute the same thing
  return config


def test_split_keeps_each_devices_rows_on_that_device():
  mesh = sharding.make_mesh()
  x = jax.device_put(np.arange(32.), sharding.batch_sharding(mesh))  # 4 rows per device
  parts = jax.jit(lambda v: microbatch.split(v, 2))(x)
  np.testing.assert_array_equal(np.asarray(parts), np.arange(32.).reshape(16, 2).T)  # micro-batch m: rows m, m+2, …
  for shard in parts.addressable_shards:  # device d holds its own rows 4d..4d+3, two per micro-batch
    d = shard.device.id
    np.testing.assert_array_equal(np.asarray(shard.data).ravel(order='F'), np.arange(4 * d, 4 * d + 4))


def test_mean_over_microbatches_is_the_whole_batch_mean():
  x = jnp.arange(12.).reshape(6, 2)
  fn = lambda b, key: (jnp.mean(b ** 2), jnp.sum(b, axis=0) / b.shape[0])
  zeros = (jnp.zeros(()), jnp.zeros(2))
  whole = fn(x, jax.random.key(0))
  for n in (1, 2, 3, 6):
    got = jax.jit(lambda v, n=n: microbatch.mean_over_microbatches(fn, v, jax.random.key(0), n, zeros))(x)
    np.testing.assert_allclose(got[0], whole[0], rtol=1e-6)
    np.testing.assert_allclose(got[1], whole[1], rtol=1e-6)


def test_num_microbatches_auto_and_errors():
  mesh8, mesh1 = sharding.make_mesh(), sharding.make_mesh(jax.devices()[:1])
  n = lambda batch, size, mesh: platform.train_plan(_config(batch, size), mesh).microbatches
  assert n(4, 0, mesh1) == 2      # CPU auto: 2 images per device
  assert n(3, 0, mesh1) == 1      # 2 does not divide 3: the whole batch
  assert n(32, 0, mesh8) == 2     # 16 = 2 per device
  assert n(8, 0, mesh8) == 1
  assert n(16, 8, mesh8) == 2
  for bad in (4, 6, -8):
    with pytest.raises(ValueError, match=f'config.microbatch_size={bad}: must divide config.batch_size=16'):
      n(16, bad, mesh8)


def test_microbatched_step_matches_whole_batch_step():
  mesh = sharding.make_mesh()
  rng = np.random.default_rng(0)
  config = _config(16, 16)
  local = {f'stream_{k}': rng.random((16, 32, 32, c), dtype=np.float32)
           for k, c in enumerate(config.model.in_channels)}
  local['target'] = rng.random((16, 32, 32, config.model.out_channels), dtype=np.float32)
  results, permutes = {}, {}
  for size in (16, 8):
    built = train.build(_config(16, size), mesh)
    data = sharding.global_batch(local, mesh)
    compiled = built.step_fn.lower(built.abstract, data).compile()  # checked, then run: one compile
    hlo = compiled.as_text()
    # The split keeps every row on its device: no all-to-all / all-gather, and no collective-permute beyond the
    # whole-batch step's own (GSPMD sends one zero-filled halo for a padding's gradient in both).
    assert 'all-to-all' not in hlo and 'all-gather' not in hlo, size
    permutes[size] = hlo.count(' collective-permute(')
    assert ('op_name="jit(train_step)/while/body/' in hlo) == (size == 8)  # the micro-batch loop
    _, metrics = compiled(train.create_state(built), data)
    results[size] = {k: float(v) for k, v in metrics.compute().items()}
  assert permutes[8] == permutes[16], permutes
  for key in ('loss', 'recon_loss', 'mi_loss', 'grad_norm'):
    np.testing.assert_allclose(results[8][key], results[16][key], rtol=2e-5, err_msg=key)
