"""End-to-end training on 8 CPU devices (tiny config): train, evaluate, checkpoint, preempt, resume; divergence guard;
and a SIGKILLed run that, restarted, ends bit-identical to an uninterrupted one.

All in-process runs share one config so the jitted step compiles once (train.build memoises it).
"""

import json
import logging
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import mef
from data_pipelines import input_pipeline
from mgdn_jax import checkpoint
from mgdn_jax import run_config
from mgdn_jax import sharding
from mgdn_jax import train

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def data_dir(mef_demo_data_dir):
  return mef_demo_data_dir


def tiny_config(data_dir):
  config = mef.get_config('tiny')  # 6 steps, checkpoint every 2, eval at 6, batch 8 (one per device)
  config.data.data_dir = data_dir
  return config


def _steps(workdir):
  with checkpoint.manager(mef.get_config('tiny'), workdir, read_only=True) as manager:
    return sorted(manager.all_steps())


def _record_batches(monkeypatch, on_call=None):
  """Spies on the host batches the loop consumes (and optionally acts on the n-th one)."""
  seen = []
  real = sharding.global_batch

  def spy(local, mesh):
    seen.append({k: np.array(v) for k, v in local.items()})
    if on_call is not None:
      local = on_call(len(seen), local)
    return real(local, mesh)

  monkeypatch.setattr(sharding, 'global_batch', spy)
  return seen


def test_train_evaluate_checkpoint_preempt_resume(data_dir, tmp_path, monkeypatch):
  config = tiny_config(data_dir)
  workdir = str(tmp_path / 'run')

  def preempt_at_4(n, local):
    if n == 4:  # what a cluster scheduler does: SIGTERM; the loop checkpoints after this step and stops
      signal.raise_signal(signal.SIGTERM)
    return local

  _record_batches(monkeypatch, preempt_at_4)
  state = train.train_and_evaluate(config, workdir)
  assert int(state['step']) == 4
  assert _steps(workdir) == [2, 4]

  resumed_batches = _record_batches(monkeypatch)
  state = train.train_and_evaluate(config, workdir)
  assert int(state['step']) == 6
  assert _steps(workdir) == [2, 4, 6]
  # The resumed run consumed exactly batches 5 and 6 of the stream an uninterrupted run sees.
  it = input_pipeline.create_train_iter(config)
  expected = [next(it) for _ in range(6)][4:]
  assert len(resumed_batches) == 2
  for got, want in zip(resumed_batches, expected):
    for k in want:
      np.testing.assert_array_equal(got[k], want[k])

  summary = json.loads(pathlib.Path(workdir, 'eval_summary.json').read_text())
  assert summary['step'] == 6 and np.isfinite(summary['metrics']['mgdn_demo/mef/PSNR_gt'])
  events = b''.join(p.read_bytes() for p in pathlib.Path(workdir).glob('events.out.tfevents.*'))
  for tag in (b'train/loss', b'train/mi_loss', b'train/grad_norm', b'train/learning_rate',
              b'eval/mgdn_demo/mef/PSNR_gt', b'eval/mgdn_demo/mef/fused_0'):
    assert tag in events, tag
  assert run_config.read_config(workdir).model.to_dict() == config.model.to_dict()

  # The exported view of the workdir: EMA weights of the best (only evaluated) step.
  model, loaded_config = checkpoint.load_model(workdir)
  assert loaded_config.task == 'mef'
  ema = jax.device_get(state['ema'])
  jax.tree.map(np.testing.assert_array_equal, checkpoint.param_dict(model), ema)

  # main.py --mode=eval: the same evaluation of the same weights (tests/evaluation_path_test.py: every path).
  scalars = train.evaluate_workdir(config, workdir)
  assert scalars == summary['metrics']
  assert pathlib.Path(workdir, 'eval', 'step_6', 'table.md').is_file()


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(data_dir, tmp_path, monkeypatch):
  config = tiny_config(data_dir)
  workdir = str(tmp_path / 'nan')

  def poison_step_3(n, local):
    if n == 3:
      local = dict(local, target=np.full_like(local['target'], np.nan))
    return local

  _record_batches(monkeypatch, poison_step_3)
  with pytest.raises(FloatingPointError, match='non-finite loss or gradients at step 3; stopped without saving it, '
                     'and the last good checkpoint is step 2'):
    train.train_and_evaluate(config, workdir)
  assert _steps(workdir) == [2]  # the poisoned state (step 3, 4) was never saved


def _main(workdir, data_dir):
  # The run shares the session's compilation cache (conftest): the step compiled in this process is not compiled
  # again in it.
  env = dict(os.environ, JAX_PLATFORMS='cpu', JAX_NUM_CPU_DEVICES='8')
  cmd = [sys.executable, 'main.py', '--config=configs/mef.py:tiny', f'--workdir={workdir}',
         f'--config.data.data_dir={data_dir}']
  return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _final_state(workdir):
  with checkpoint.manager(mef.get_config('tiny'), workdir, read_only=True) as manager:
    assert manager.latest_step() == 6
    return jax.device_get(manager.restore(6, args=ocp.args.Composite(state=ocp.args.StandardRestore()))['state'])


def test_sigkill_and_restart_is_bit_identical(data_dir, tmp_path, caplog):
  """A `main.py` run SIGKILLed after its first checkpoint and restarted ends with the uninterrupted run's state.

  The uninterrupted reference and the restart run in this process: the same program on the same devices as
  `main.py` (its result is bit-identical to a `main.py` run's), with the step this file already compiled. Only the
  run that is killed needs a process of its own.
  """
  train.train_and_evaluate(tiny_config(data_dir), str(tmp_path / 'ref'))

  killed_dir = str(tmp_path / 'killed')
  victim = _main(killed_dir, data_dir)
  deadline = time.time() + 600
  while not os.path.isdir(os.path.join(killed_dir, 'checkpoints', '2')) and victim.poll() is None:
    assert time.time() < deadline
    time.sleep(0.1)
  victim.send_signal(signal.SIGKILL)
  out, _ = victim.communicate()
  assert victim.returncode == -signal.SIGKILL, out[-3000:]
  assert 6 not in _steps(killed_dir)

  with caplog.at_level(logging.INFO):
    train.train_and_evaluate(tiny_config(data_dir), killed_dir)  # takes over the dead run's workdir lock
  assert 'Resuming from' in caplog.text

  want, got = _final_state(str(tmp_path / 'ref')), _final_state(killed_dir)
  assert jax.tree.structure(want) == jax.tree.structure(got)
  jax.tree.map(np.testing.assert_array_equal, got, want)
