"""Self-describing weights files: export → load round trip, short names, and what is refused."""
import numpy as np
import pytest
from flax import nnx

from configs import mff
from mgdn_jax import model as model_lib
from mgdn_jax import tasks
from mgdn_jax import weights


@pytest.fixture(scope='module')
def tiny():
  config = mff.get_config('tiny')
  return model_lib.create_model(config.model, seed=3), config


def test_round_trip(tiny, tmp_path):
  model, config = tiny
  path = tmp_path / 'w.npz'
  digest = weights.export(path, model, config, {'trained_by': 'test'})
  assert digest == weights.sha256(path) and len(digest) == 64
  loaded, loaded_config = weights.load(path)
  assert loaded_config.model.to_dict() == config.model.to_dict() and loaded_config.task == 'mff'
  want, got = weights.flat_params(model), weights.flat_params(loaded)
  assert want.keys() == got.keys() and all(np.array_equal(want[k], got[k]) for k in want)
  assert weights.read(path)[2] == {'trained_by': 'test'}
  assert [p.name for p in tmp_path.iterdir()] == ['w.npz']  # no temporary file left


def test_never_replaces_and_refuses_nonfinite(tiny, tmp_path):
  model, config = tiny
  path = tmp_path / 'w.npz'
  path.write_bytes(b'mine')
  with pytest.raises(FileExistsError, match='exists'):
    weights.export(path, model, config)
  assert path.read_bytes() == b'mine'
  broken = nnx.clone(model)
  leaf = nnx.state(broken, nnx.Param)
  first = next(iter(nnx.to_flat_state(leaf)))[1]
  first.value = first.value.at[(0,) * first.value.ndim].set(np.nan)
  with pytest.raises(FloatingPointError, match='not finite'):
    weights.export(tmp_path / 'nan.npz', broken, config)
  assert not (tmp_path / 'nan.npz').exists()


def test_bad_files_and_names(tiny, tmp_path):
  model, config = tiny
  good = tmp_path / 'w.npz'
  weights.export(good, model, config)
  truncated = tmp_path / 'cut.npz'
  truncated.write_bytes(good.read_bytes()[:200])
  with pytest.raises(ValueError, match='cut.npz: unreadable weights file'):
    weights.load(truncated)
  foreign = tmp_path / 'foreign.npz'
  np.savez(foreign, a=np.zeros(3))
  with pytest.raises(ValueError, match='not an MGDN-JAX weights file'):
    weights.load(foreign)
  with pytest.raises(FileNotFoundError, match="unknown weights 'mgdn-jax/nope'"):
    weights.load('mgdn-jax/nope')
  with pytest.raises(FileNotFoundError, match='no such weights file'):
    weights.load(tmp_path / 'absent.npz')
  params, _, _ = weights.read(good)
  key = sorted(params)[0]
  np.savez(tmp_path / 'short.npz', **{k: v for k, v in params.items() if k != key},
           __format__=np.asarray(weights.FORMAT), __config__=np.load(good)['__config__'])
  with pytest.raises(ValueError, match=f'missing {key}'):
    weights.load(tmp_path / 'short.npz')


def test_shipped_weights_load():
  for name in weights.shipped():
    model, config = weights.load(name)
    assert config.task in tasks.NAMES and model_lib.count_params(model) > 0


def test_load_model_takes_weights_files(tiny, tmp_path):
  from mgdn_jax import checkpoint
  model, config = tiny
  path = tmp_path / 'w.npz'
  weights.export(path, model, config)
  loaded, loaded_config = checkpoint.load_model(str(path), dtype='bfloat16')
  assert loaded_config.model.dtype == 'bfloat16'
  assert all(np.array_equal(a, b) for a, b in zip(weights.flat_params(model).values(),
                                                  weights.flat_params(loaded).values()))
  with pytest.raises(FileNotFoundError, match='unknown weights'):
    checkpoint.load_model('mgdn-jax/absent')
