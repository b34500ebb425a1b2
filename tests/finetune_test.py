"""Fine-tuning start (config.init_weights): the initial params and EMA are the named weights; another network is
refused in one line naming the differing fields."""
import jax
import numpy as np
import pytest

from configs import mef
from mgdn_jax import checkpoint
from mgdn_jax import model as model_lib
from mgdn_jax import sharding
from mgdn_jax import train
from mgdn_jax import weights


def _state(config):
  return train.create_state(train.build(config, sharding.make_mesh()))


def test_state_starts_from_the_weights(tmp_path):
  config = mef.get_config('tiny')
  source = model_lib.create_model(config.model, seed=5)
  weights.export(tmp_path / 'start.npz', source, config)
  config.init_weights = str(tmp_path / 'start.npz')
  state = train.init_from_weights(config, _state(config))
  want = checkpoint.param_dict(source)
  for part in ('params', 'ema'):
    leaves = jax.tree.leaves(jax.tree.map(lambda a, b: np.array_equal(np.asarray(a), np.asarray(b)),
                                          state[part], want))
    assert leaves and all(leaves), part
  fresh = _state(mef.get_config('tiny'))
  assert all(jax.tree.leaves(jax.tree.map(lambda a, b: a.sharding == b.sharding, state['params'], fresh['params'])))
  assert not np.array_equal(np.asarray(jax.tree.leaves(fresh['params'])[0]), np.asarray(jax.tree.leaves(want)[0]))


def test_other_network_is_refused(tmp_path):
  config = mef.get_config('tiny')
  other = mef.get_config('demo')  # two stages instead of one
  weights.export(tmp_path / 'other.npz', model_lib.create_model(other.model), other)
  config.init_weights = str(tmp_path / 'other.npz')
  with pytest.raises(ValueError, match=r'is a different network \(model.depths'):
    train.init_from_weights(config, _state(config))
