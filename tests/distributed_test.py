"""Two JAX processes (2 CPU devices each, localhost coordinator) train the tiny config on one 4-device global
mesh: each reads its own half of every batch, and both end with identical parameters."""

import os
import pathlib
import socket
import subprocess
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]

_WORKER = """
import sys
import jax
jax.config.update('jax_num_cpu_devices', 2)
jax.config.update('jax_cpu_collectives_implementation', 'gloo')
port, pid, workdir, data_dir, out = sys.argv[1:]
jax.distributed.initialize(f'localhost:{port}', num_processes=2, process_id=int(pid))
import numpy as np
from configs import mef
from mgdn_jax import train
assert jax.process_count() == 2 and jax.device_count() == 4 and jax.local_device_count() == 2
config = mef.get_config('tiny')
config.num_train_steps = config.checkpoint_every_steps = config.eval_every_steps = 2
config.data.data_dir = data_dir
state = train.train_and_evaluate(config, workdir)
assert int(state['step']) == 2
np.savez(out, *[np.asarray(x.addressable_data(0)) for x in jax.tree.leaves(state)])
jax.distributed.shutdown()
"""


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def test_two_processes_train_on_one_global_mesh(mef_demo_data_dir, tmp_path):
  data_dir = mef_demo_data_dir  # prepared by the fixture, before two writers could race
  port, workdir = _free_port(), str(tmp_path / 'run')
  env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=str(REPO))
  procs = [subprocess.Popen([sys.executable, '-c', _WORKER, str(port), str(pid), workdir, data_dir,
                             str(tmp_path / f'params_{pid}.npz')],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for pid in (0, 1)]
  outs = [p.communicate(timeout=1200)[0] for p in procs]
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-4000:]

  a, b = np.load(tmp_path / 'params_0.npz'), np.load(tmp_path / 'params_1.npz')
  assert a.files == b.files and len(a.files) > 10
  for k in a.files:
    np.testing.assert_array_equal(a[k], b[k])
  assert (pathlib.Path(workdir) / 'checkpoints' / '2').is_dir()
  assert (pathlib.Path(workdir) / 'eval_summary.json').is_file()
