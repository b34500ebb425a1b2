"""Checkpoints: exported-model round trip, EMA/best restore from a training workdir, and a training checkpoint
written on 8 devices restored onto 4 and onto 1 device (in a 4-device subprocess) with identical values."""

import os
import pathlib
import subprocess
import sys

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import mef
from mgdn_jax import checkpoint
from mgdn_jax import model as model_lib
from mgdn_jax import run_config
from mgdn_jax import sharding
from mgdn_jax import train
from mgdn_jax import train_state

REPO = pathlib.Path(__file__).resolve().parents[1]

# In a 4-device process: restores onto all 4 devices, then onto a mesh of the first one alone.
_RESTORE = """
import sys, numpy as np, jax, orbax.checkpoint as ocp
from configs import mef
from mgdn_jax import checkpoint, sharding, train
config = mef.get_config('tiny')
assert jax.device_count() == 4
for devices in (4, 1):
  mesh = sharding.make_mesh(jax.devices()[:devices])
  with checkpoint.manager(config, sys.argv[1], read_only=True) as manager:
    state = manager.restore(2, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(train.build(config, mesh).abstract)))['state']
  leaves = jax.tree.leaves(state)
  assert all(x.sharding.mesh.devices.size == devices for x in leaves)
  np.savez(f'{sys.argv[2]}_{devices}.npz', *[np.asarray(x) for x in leaves])
"""


@pytest.fixture(scope='module')
def trained_like(tmp_path_factory):
  """A tiny training state on the 8-device mesh with distinct params/EMA/step (no step compiled)."""
  config = mef.get_config('tiny')
  mesh = sharding.make_mesh()
  state = train.create_state(train.build(config, mesh))
  state = dict(state, step=state['step'] + 2,
               ema=jax.tree.map(lambda x: x * 0.5 + 1., state['ema']))
  return config, mesh, state


def test_export_round_trip(tmp_path):
  config = mef.get_config('tiny')
  model = model_lib.create_model(config.model, seed=3)
  checkpoint.save_model(tmp_path / 'export', model, config)
  loaded, loaded_config = checkpoint.load_model(tmp_path / 'export')
  assert loaded_config.to_dict() == config.to_dict()
  jax.tree.map(np.testing.assert_array_equal, checkpoint.param_dict(loaded), checkpoint.param_dict(model))
  with pytest.raises(FileExistsError, match='export to a new directory'):
    checkpoint.save_model(tmp_path / 'export', model, config)
  with pytest.raises(FileNotFoundError, match='neither an exported model'):
    checkpoint.load_model(tmp_path)


def test_load_model_from_workdir_picks_best_ema(trained_like, tmp_path):
  config, _, state = trained_like
  workdir = str(tmp_path / 'run')
  run_config.write_config(workdir, config)
  metric = config.best_metric
  with checkpoint.manager(config, workdir) as manager:
    for step, score, offset in ((2, 30., 0.), (4, 10., 5.)):  # step 2 is best (max), step 4 latest
      s = dict(state, step=state['step'] * 0 + step, ema=jax.tree.map(lambda x: x + offset, state['ema']))
      manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(s)), metrics={metric: score})
    manager.wait_until_finished()
  model, _ = checkpoint.load_model(workdir)
  jax.tree.map(np.testing.assert_array_equal, checkpoint.param_dict(model), jax.device_get(state['ema']))
  raw, _ = checkpoint.load_model(workdir, step=4, use_ema=False)
  jax.tree.map(np.testing.assert_array_equal, checkpoint.param_dict(raw), jax.device_get(state['params']))


def test_8_device_checkpoint_restores_on_4_and_1(trained_like, tmp_path):
  config, mesh, state = trained_like
  assert mesh.devices.size == 8
  workdir = str(tmp_path / 'run8')
  with checkpoint.manager(config, workdir) as manager:
    manager.save(2, args=ocp.args.Composite(state=ocp.args.StandardSave(state)))
  want = [np.asarray(x) for x in jax.tree.leaves(state)]
  env = dict(os.environ, JAX_PLATFORMS='cpu', JAX_NUM_CPU_DEVICES='4', PYTHONPATH=str(REPO))
  proc = subprocess.run([sys.executable, '-c', _RESTORE, workdir, str(tmp_path / 'restored')], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  for devices in (4, 1):
    got = np.load(tmp_path / f'restored_{devices}.npz')
    assert len(got.files) == len(want)
    for i, w in enumerate(want):
      np.testing.assert_array_equal(got[f'arr_{i}'], w)


_LOAD_AND_LIST_MODULES = """
import sys
from mgdn_jax import checkpoint
checkpoint.load_model(sys.argv[1])
print(' '.join(sorted(m for m in sys.modules if m.startswith(('mgdn_jax', 'data_pipelines', 'grain')))))
"""


def test_loading_a_model_imports_no_training_code(trained_like, tmp_path):
  config, _, state = trained_like
  workdir = str(tmp_path / 'run')
  run_config.write_config(workdir, config)
  with checkpoint.manager(config, workdir) as manager:
    manager.save(2, args=ocp.args.Composite(state=ocp.args.StandardSave(state)))
  env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=str(REPO))
  proc = subprocess.run([sys.executable, '-c', _LOAD_AND_LIST_MODULES, workdir], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  loaded = proc.stdout.split()
  assert 'mgdn_jax.checkpoint' in loaded
  for training in ('mgdn_jax.train', 'mgdn_jax.train_state', 'mgdn_jax.microbatch',
                   'mgdn_jax.sharding', 'data_pipelines', 'grain'):
    assert training not in loaded, training


def test_read_only_open_logs_no_orbax_notice(tmp_path, caplog):
  """fuse / evaluate open workdirs read-only: orbax's notices that this is so must not reach the console."""
  (tmp_path / checkpoint.CHECKPOINTS_DIR).mkdir()
  with caplog.at_level('INFO'):
    with checkpoint.manager(mef.get_config('tiny'), tmp_path, read_only=True) as manager:
      assert manager.latest_step() is None
  assert not [r.getMessage() for r in caplog.records if r.levelname == 'WARNING']


def test_resume_reads_a_checkpoint_with_per_array_adam_moments(trained_like, tmp_path):
  """Checkpoints written with Adam's moments per parameter array resume with the same values, flattened, at the
  same data position (a layout change must never set a user's checkpoints aside as unreadable)."""
  config, mesh, state = trained_like
  built = train.build(config, mesh)
  older = train_state.per_array_opt_state(built.abstract, built.tx)
  moments = built.tx.init({'model': state['params'], 'mi': state['mi_params']})
  moments = jax.tree_util.tree_map_with_path(  # distinct values per leaf and element
      lambda path, x: x + 0.01 * len(str(path)) + jax.numpy.arange(x.size, dtype=x.dtype).reshape(x.shape)
      if jax.numpy.issubdtype(x.dtype, jax.numpy.floating) else x + 3, moments)
  old_state = dict(state, opt_state=moments)
  assert jax.tree.structure(old_state) == jax.tree.structure(older) != jax.tree.structure(built.abstract)
  data = iter(grain.MapDataset.range(10).to_iter_dataset())
  next(data), next(data)
  workdir = str(tmp_path / 'run')
  with checkpoint.manager(config, workdir) as manager:
    checkpoint.save(manager, 2, old_state, data)
  resumed_data = iter(grain.MapDataset.range(10).to_iter_dataset())
  with checkpoint.manager(config, workdir) as manager:
    restored, step = checkpoint.restore(
        manager, built.abstract, resumed_data,
        older_layout=(older, lambda s: train_state.upgrade_opt_state(s, built.abstract)))
  assert step == 2 and next(resumed_data) == 2
  assert not (tmp_path / 'run' / checkpoint.CORRUPT_DIR).exists()
  assert jax.tree.structure(restored) == jax.tree.structure(built.abstract)
  jax.tree.map(lambda x, a: (x.shape, x.sharding) == (a.shape, a.sharding) or pytest.fail(str(a)),
               restored, built.abstract)
  mu = moments[0].mu
  want = np.concatenate([np.ravel(x) for x in jax.tree.leaves(mu['model'])])
  np.testing.assert_array_equal(np.asarray(restored['opt_state'][0].mu['model']), want)
  assert int(restored['opt_state'][0].count) == int(moments[0].count)
  jax.tree.map(np.testing.assert_array_equal, restored['params'], state['params'])
