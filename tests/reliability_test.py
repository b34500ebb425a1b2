"""What a run promises when things go wrong with its state on disk (read this to see what is guaranteed).

1. A non-finite state is never saved: `checkpoint.save` checks params, mi_params, opt_state and ema first and stops
   with one line naming the last good checkpoint step, or saying there is none. A diverging `main.py` run leaves
   only finite checkpoints behind.
2. Inference refuses non-finite weights (at load) and non-finite outputs (before anything is written).
3. An unreadable newest checkpoint (a truncated data file, a zero-byte `_METADATA`, a missing file) does not block
   training resume, `--mode=eval`, `fuse` or `evaluate`: they use the newest intact step and warn naming the
   unreadable one, which is never deleted (training moves it to `<workdir>/corrupt_checkpoints/`). With nothing
   intact: one line.
4. One training run per workdir: a second stops at once with one line naming the workdir and the holder (host,
   pid); the lock of a killed run is taken over.
"""

import logging
import os
import pathlib
import signal
import socket
import subprocess
import sys

import grain
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from PIL import Image
import pytest

from configs import mef
from mgdn_jax import checkpoint
from mgdn_jax import fuse
from mgdn_jax import inference
from mgdn_jax import model as model_lib
from mgdn_jax import run_config
from mgdn_jax import sharding
from mgdn_jax import train
from mgdn_jax import workdir_lock

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG = mef.get_config('tiny')


@pytest.fixture(scope='module')
def state():
  """A tiny training state (replicated on the 8-device mesh); no step is compiled."""
  return train.create_state(train.build(CONFIG, sharding.make_mesh()))


def _data_iter(position: int = 0):
  it = iter(grain.MapDataset.range(100).to_iter_dataset())
  for _ in range(position):
    next(it)
  return it


def _at_step(state, step):
  """`state` marked as step `step`, its weights shifted by `step` so each saved step is recognisable."""
  shift = lambda t: jax.tree.map(lambda x: x + step, t)
  return dict(state, step=state['step'] * 0 + step, params=shift(state['params']), ema=shift(state['ema']))


def _workdir(tmp_path, state, steps=(2, 4)):
  """A workdir holding a checkpoint at each of `steps` (the data iterator advanced `step` elements)."""
  workdir = str(tmp_path / 'run')
  run_config.write_config(workdir, CONFIG)
  with checkpoint.manager(CONFIG, workdir) as mgr:
    for step in steps:
      checkpoint.save(mgr, step, _at_step(state, step), _data_iter(step))
    mgr.wait_until_finished()
  return workdir


def _corrupt(step_dir: pathlib.Path, how: str) -> None:
  """The three ways a checkpoint breaks on disk: a cut-off copy, an emptied metadata file, a lost data file."""
  data = max((p for p in (step_dir / 'state').rglob('*') if p.is_file()), key=lambda p: p.stat().st_size)
  if how == 'truncated':
    with open(data, 'r+b') as f:
      f.truncate(data.stat().st_size // 2)
  elif how == 'empty_metadata':
    (step_dir / 'state' / '_METADATA').write_bytes(b'')
  elif how == 'missing_file':
    data.unlink()
  else:
    raise ValueError(how)


def _files(path: pathlib.Path) -> dict[str, int]:
  return {str(p.relative_to(path)): p.stat().st_size for p in path.rglob('*') if p.is_file()}


# ------------------------------------------------------------------------------------------ 1. finite state


def test_save_refuses_a_non_finite_state_and_names_the_last_good_step(state, tmp_path):
  workdir = _workdir(tmp_path, state, steps=(2,))
  nan_ema = dict(_at_step(state, 3), ema=jax.tree.map(lambda x: x * jnp.nan, state['ema']))
  with checkpoint.manager(CONFIG, workdir) as mgr:
    with pytest.raises(checkpoint.NonFiniteStateError,
                       match=r'the state at step 3 holds non-finite values in ema; not saved, and the last good '
                             r'checkpoint is step 2 \(.*/checkpoints/2\)'):
      checkpoint.save(mgr, 3, nan_ema, _data_iter())
    assert mgr.all_steps() == [2]
  assert not (pathlib.Path(workdir) / 'checkpoints' / '3').exists()


def test_save_with_no_earlier_checkpoint_says_there_is_none(state, tmp_path):
  inf_opt = dict(state, opt_state=jax.tree.map(lambda x: x + jnp.inf if jnp.issubdtype(x.dtype, jnp.floating)
                                               else x, state['opt_state']))
  with checkpoint.manager(CONFIG, str(tmp_path / 'run')) as mgr:
    with pytest.raises(checkpoint.NonFiniteStateError,
                       match=r'non-finite values in opt_state; not saved, and there is no good checkpoint'):
      checkpoint.save(mgr, 1, inf_opt, _data_iter())
    assert mgr.all_steps() == []


def _overflowing_first_moment(state):
  """`state` with Adam's first moment at 1e38: step 1's bias-corrected update (the moment ÷ (1 − β1), ×10)
  overflows float32, so the weights it writes are infinite while that step's loss and gradients are finite."""
  huge = lambda path, x: jnp.full_like(x, 1e38) if any(getattr(k, 'name', '') == 'mu' for k in path) else x
  return dict(state, opt_state=jax.tree_util.tree_map_with_path(huge, state['opt_state']))


def test_diverging_run_saves_no_non_finite_checkpoint(mef_demo_data_dir, tmp_path, monkeypatch):
  """A `main.py` run whose first update overflows (as a huge learning rate does) stops with one line and saves
  nothing. In this process, through main.py's own flag parsing and error handling, on the tiny step the other
  tests run (compiled once per session): a diverging learning rate would be a second program to compile."""
  import main  # pylint: disable=g-import-not-at-top  (defines main.py's absl flags: only this test needs them)
  workdir = tmp_path / 'nan'
  create_state = train.create_state
  monkeypatch.setattr(train, 'create_state', lambda built: _overflowing_first_moment(create_state(built)))
  argv = ['main.py', f'--config={REPO}/configs/mef.py:tiny', f'--workdir={workdir}', '--verbose',
          '--config.checkpoint_every_steps=1', f'--config.data.data_dir={mef_demo_data_dir}']
  monkeypatch.setattr(sys, 'argv', argv)  # config_flags finds the --config.* overrides in sys.argv
  main._parse(argv)  # pylint: disable=protected-access
  with pytest.raises(SystemExit) as stop:
    main.main([])
  assert str(stop.value) == (
      'main.py: error: NonFiniteStateError: the state at step 1 holds non-finite values in ema, mi_params, '
      f'params; not saved, and there is no good checkpoint: {workdir}/checkpoints holds none.')
  assert not [p for p in (workdir / 'checkpoints').iterdir() if p.name.isdigit()]


# -------------------------------------------------------------------------------------- 2. inference refuses


def test_load_refuses_non_finite_weights(state, tmp_path):
  workdir = _workdir(tmp_path, state, steps=(2,))
  bad = dict(_at_step(state, 4), ema=jax.tree.map(lambda x: x * jnp.nan, state['ema']))
  with checkpoint.manager(CONFIG, workdir) as mgr:  # written past `save`, as an older version could have
    mgr.save(4, args=ocp.args.Composite(state=ocp.args.StandardSave(bad)), force=True)
  with pytest.raises(checkpoint.CheckpointError, match=r'checkpoints/4 holds non-finite weights \(\d+ arrays, '
                                                       r'first: .*\); refusing to load them'):
    checkpoint.load_model(workdir)
  pair = [str(tmp_path / f'{n}.png') for n in 'ab']
  for path in pair:
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
  with pytest.raises(SystemExit, match=r'fuse: error: cannot load checkpoint .*non-finite weights'):
    fuse.main(['--task=mef', f'--checkpoint={workdir}', *pair, f'--output={tmp_path / "o.png"}'])
  assert not (tmp_path / 'o.png').exists()


def test_fuse_refuses_non_finite_output():
  model = model_lib.create_model(model_lib.model_config('tiny_fusion'))
  images = [np.full((8, 8, 3), 0.5, np.float32), np.full((8, 8, 3), np.nan, np.float32)]
  with pytest.raises(ValueError, match=r'the model output holds 192 non-finite values'):
    inference.fuse(model, images)


# ----------------------------------------------------------------------------------------- 3. restore fallback


@pytest.mark.parametrize('how', ['truncated', 'empty_metadata', 'missing_file'])
def test_resume_falls_back_to_the_newest_intact_step(state, tmp_path, caplog, how):
  workdir = pathlib.Path(_workdir(tmp_path, state))
  _corrupt(workdir / 'checkpoints' / '4', how)
  kept = _files(workdir / 'checkpoints' / '4')
  abstract = train.build(CONFIG, sharding.make_mesh()).abstract
  it = _data_iter()
  with caplog.at_level(logging.WARNING), checkpoint.manager(CONFIG, workdir) as mgr:
    restored, step = checkpoint.restore(mgr, abstract, it)
    assert step == 2 and mgr.all_steps() == [2]
    checkpoint.save(mgr, 4, restored, it)  # the resumed run writes step 4 again
    mgr.wait_until_finished()
    assert mgr.all_steps() == [2, 4]
  assert int(restored['step']) == 2 and next(it) == 2  # the data position of step 2
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(restored['ema']),
               jax.device_get(_at_step(state, 2)['ema']))
  assert 'checkpoint step 4 in ' in caplog.text and 'is unreadable' in caplog.text
  assert _files(workdir / 'corrupt_checkpoints' / '4') == kept  # set aside, every byte kept


def test_readers_fall_back_and_leave_the_corrupt_step_in_place(state, tmp_path, caplog):
  workdir = pathlib.Path(_workdir(tmp_path, state))
  # Readers restore only the weights they use: an emptied _METADATA breaks every read of the step (a truncated
  # data file breaks a reader only if it holds some of those weights).
  _corrupt(workdir / 'checkpoints' / '4', 'empty_metadata')
  kept = _files(workdir / 'checkpoints' / '4')
  with caplog.at_level(logging.WARNING):
    loaded = checkpoint.load(workdir)  # main.py --mode=eval, evaluate and fuse load through here
  assert loaded.step == 2
  jax.tree.map(np.testing.assert_array_equal, checkpoint.param_dict(loaded.model),
               jax.device_get(_at_step(state, 2)['ema']))
  assert 'checkpoint step 4 in ' in caplog.text and 'using step 2 instead' in caplog.text
  assert _files(workdir / 'checkpoints' / '4') == kept
  with pytest.raises(checkpoint.CheckpointError, match=r'no intact checkpoint in .*: step 4 is unreadable'):
    checkpoint.load(workdir, step=4)  # an explicit step never silently becomes another one


def test_nothing_intact_is_one_line(state, tmp_path):
  workdir = pathlib.Path(_workdir(tmp_path, state))
  for step in ('2', '4'):
    _corrupt(workdir / 'checkpoints' / step, 'empty_metadata')
  abstract = train.build(CONFIG, sharding.make_mesh()).abstract
  with checkpoint.manager(CONFIG, workdir) as mgr:
    with pytest.raises(checkpoint.CheckpointError) as e:
      checkpoint.restore(mgr, abstract, _data_iter())
  assert '\n' not in str(e.value)
  assert str(e.value).startswith(f'no intact checkpoint in {workdir}/checkpoints: step 4 is unreadable (')
  assert 'step 2 is unreadable' in str(e.value)
  assert sorted(os.listdir(workdir / 'checkpoints')) == ['2', '4']  # nothing moved when nothing can be used


# ------------------------------------------------------------------------------------------------ 4. the lock


def test_second_run_on_a_workdir_stops_at_once(tmp_path):
  workdir = str(tmp_path / 'run')
  with workdir_lock.hold(workdir):
    with pytest.raises(workdir_lock.WorkdirBusyError,
                       match=rf'workdir {workdir} is in use by another training run '
                             rf'\(host={socket.gethostname()} pid={os.getpid()}\)'):
      train.train_and_evaluate(CONFIG, workdir)
    env = dict(os.environ, JAX_PLATFORMS='cpu', JAX_NUM_CPU_DEVICES='8')
    proc = subprocess.run([sys.executable, 'main.py', '--config=configs/mef.py:tiny', f'--workdir={workdir}'],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1] == (
      f'main.py: error: WorkdirBusyError: workdir {workdir} is in use by another training run '
      f'(host={socket.gethostname()} pid={os.getpid()}); wait for it to finish or use another --workdir.')
  assert not os.path.exists(os.path.join(workdir, 'checkpoints'))
  with workdir_lock.hold(workdir):  # released on exit
    pass


_HOLD_AND_WAIT = """
import sys, time
from mgdn_jax import workdir_lock
with workdir_lock.hold(sys.argv[1]):
  print('locked', flush=True)
  time.sleep(600)
"""


def test_lock_of_a_killed_run_is_taken_over(tmp_path):
  workdir = str(tmp_path / 'run')
  holder = subprocess.Popen([sys.executable, '-c', _HOLD_AND_WAIT, workdir], cwd=REPO, stdout=subprocess.PIPE,
                            text=True, env=dict(os.environ, JAX_PLATFORMS='cpu'))
  assert holder.stdout.readline().strip() == 'locked'
  with pytest.raises(workdir_lock.WorkdirBusyError, match=rf'pid={holder.pid}\)'):
    with workdir_lock.hold(workdir):
      pass
  holder.send_signal(signal.SIGKILL)
  holder.wait()
  lock_file = pathlib.Path(workdir, workdir_lock.LOCK_FILE)
  assert f'pid={holder.pid}' in lock_file.read_text()  # the dead run's record is still there ...
  with workdir_lock.hold(workdir):  # ... and the lock is free all the same
    assert lock_file.read_text() == f'host={socket.gethostname()} pid={os.getpid()}\n'
