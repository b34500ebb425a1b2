"""mgdn_jax.platform: the train step's backend decisions follow the platform of the target mesh (never the host's
default backend), the XLA:CPU compile option, and the glibc malloc re-exec of the entry points."""
import importlib.util
import os
import platform as stdlib_platform
import subprocess
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import mef
from benchmarks import train_bench
from mgdn_jax import platform
from mgdn_jax import sharding
from mgdn_jax import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
glibc_only = pytest.mark.skipif(sys.platform != 'linux' or stdlib_platform.libc_ver()[0] != 'glibc',
                                reason='glibc tunables exist only on Linux/glibc')


def _fake_mesh(platform_name: str, devices: int = 4):
  """Stands in for a mesh of devices this host does not have (what the decisions read of a mesh: its devices)."""
  return types.SimpleNamespace(devices=np.array([types.SimpleNamespace(platform=platform_name)] * devices))


def _config(**overrides):
  config = mef.get_config('tiny')
  config.batch_size = 8
  for k, v in overrides.items():
    setattr(config, k, v)
  return config


@pytest.mark.parametrize('target', ['tpu', 'gpu'])
def test_accelerator_mesh_gets_autodiff_whole_batch_and_no_cpu_option(target):
  assert jax.default_backend() == 'cpu'  # the host: the decisions must not follow it
  plan = platform.train_plan(_config(), _fake_mesh(target))
  assert plan.platform == target
  assert plan.gradients == 'autodiff'
  assert plan.pff_kernels == ('pallas_tpu' if target == 'tpu' else 'xla')  # the Pallas kernels are Mosaic TPU
  assert plan.microbatches == 1
  assert plan.compiler_options == {}
  assert plan.state_device is not None and plan.state_device.platform == 'cpu'  # initialised on the host


def test_cpu_mesh_gets_the_tuned_choices():
  plan = platform.train_plan(_config(), sharding.make_mesh(jax.devices()[:2]))
  assert plan.platform == 'cpu'
  assert plan.gradients == 'tuned_cpu'
  assert plan.pff_kernels == 'xla'
  assert plan.microbatches == 2  # 2 images per device: 4 of the 8 per micro-batch
  assert plan.compiler_options in ({}, {platform._YNN_OPTION: platform._YNN_VALUE})  # {} where XLA lacks it
  assert plan.state_device.platform == 'cpu'


def test_config_fields_override_auto():
  mesh = sharding.make_mesh(jax.devices()[:2])
  plan = platform.train_plan(_config(gradients='autodiff', microbatch_size=8, xla_cpu_ynn_fusion=False), mesh)
  assert (plan.gradients, plan.microbatches, plan.compiler_options) == ('autodiff', 1, {})
  assert platform.train_plan(_config(gradients='tuned_cpu'), _fake_mesh('tpu')).gradients == 'tuned_cpu'
  with pytest.raises(ValueError, match="config.gradients='custom'"):
    platform.train_plan(_config(gradients='custom'), mesh)
  assert platform.train_plan(_config(pff_kernels='xla'), _fake_mesh('tpu')).pff_kernels == 'xla'
  assert platform.train_plan(_config(pff_kernels='pallas_tpu'), mesh).pff_kernels == 'pallas_tpu'
  with pytest.raises(ValueError, match="config.pff_kernels='flash'"):
    platform.train_plan(_config(pff_kernels='flash'), mesh)


def test_train_step_differentiates_with_the_plans_gradients():
  mesh = sharding.make_mesh(jax.devices()[:1])
  barriers = {}
  for gradients in ('tuned_cpu', 'autodiff'):
    config = _config(gradients=gradients, batch_size=2, patch_size=16)
    built = train.build(config, mesh)
    assert built.plan.gradients == gradients
    jaxpr = str(built.step_fn.trace(jax.eval_shape(built.init), train_bench.batch_shapes(config)).jaxpr)
    barriers[gradients] = jaxpr.count('optimization_barrier')
  # The tuned backward passes pin layouts with optimization barriers; under autodiff only the dilated convs keep
  # theirs (kernels/conv.py).
  assert 0 < barriers['autodiff'] < barriers['tuned_cpu'], barriers


def test_compile_option_matches_default_results():
  options = platform.train_compiler_options(True, 'cpu')
  rng = np.random.default_rng(0)
  x, w = (jnp.asarray(rng.standard_normal(s), jnp.float32) for s in ((256, 64), (64, 96)))
  f = lambda x, w: jnp.sum(jax.nn.gelu(x @ w, approximate=False) * jnp.exp(-jnp.abs(x @ w)), axis=-1)
  got = jax.jit(f, compiler_options=options)(x, w)
  np.testing.assert_allclose(np.asarray(got), np.asarray(jax.jit(f)(x, w)), rtol=1e-5, atol=1e-5)


def test_users_xla_flags_win(monkeypatch):
  monkeypatch.setenv('XLA_FLAGS', '--xla_cpu_experimental_ynn_fusion_type=individual_dot')
  assert platform.train_compiler_options(True, 'cpu') == {}


def test_unknown_option_falls_back_to_default(monkeypatch):
  platform._ynn_option_compiles.cache_clear()
  monkeypatch.setattr(platform, '_YNN_OPTION', 'xla_cpu_no_such_option_for_this_test')
  try:
    assert platform.train_compiler_options(True, 'cpu') == {}
  finally:
    platform._ynn_option_compiles.cache_clear()


def _thp_mode() -> str:
  try:
    with open('/sys/kernel/mm/transparent_hugepage/enabled') as f:
      return f.read().split('[')[1].split(']')[0]
  except (OSError, IndexError):
    return 'never'

# Runs a jitted function whose 64 MB buffers (above glibc's mmap threshold, like a training step's) are allocated
# per execution, then prints the minor page faults of three more executions and the process's GLIBC_TUNABLES.
_PROBE = """
import os, resource
from mgdn_jax import platform
platform.tune_process()
import jax, jax.numpy as jnp
f = jax.jit(lambda x: jnp.cumsum(jnp.cumsum(x, axis=0)[::-1], axis=1))
x = jnp.ones((4096, 4096))
for _ in range(2): f(x).block_until_ready()
r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3): f(x).block_until_ready()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0, os.environ.get('GLIBC_TUNABLES', ''))
"""


def _probe(**env_overrides) -> tuple[int, str]:
  env = {k: v for k, v in os.environ.items() if k not in ('GLIBC_TUNABLES', 'XLA_FLAGS')}
  env.update(JAX_PLATFORMS='cpu', PYTHONPATH=REPO, **env_overrides)
  out = subprocess.run([sys.executable, '-c', _PROBE], env=env, capture_output=True, text=True, check=True)
  faults, _, tunables = out.stdout.strip().splitlines()[-1].partition(' ')
  return int(faults), tunables


def test_tuned_environ_keeps_user_settings():
  env = platform.tuned_environ({'GLIBC_TUNABLES': 'glibc.malloc.arena_max=4:glibc.rtld.nns=8', 'A': 'b'})
  assert env['GLIBC_TUNABLES'].split(':') == ['glibc.malloc.arena_max=4', 'glibc.rtld.nns=8', 'glibc.malloc.hugetlb=1']
  assert env['A'] == 'b' and platform.malloc_tuned(env)
  kept = platform.tuned_environ({'GLIBC_TUNABLES': 'glibc.malloc.hugetlb=0'})
  assert kept['GLIBC_TUNABLES'] == 'glibc.malloc.hugetlb=0'  # the user's value wins (and counts as set: no loop)
  assert platform.malloc_tuned(kept)
  assert platform.tuned_environ({})['GLIBC_TUNABLES'] == ':'.join(platform.MALLOC_TUNABLES)
  assert not platform.malloc_tuned({})


@glibc_only
@pytest.mark.skipif(_thp_mode() == 'never', reason="transparent huge pages are disabled (THP mode 'never')")
def test_reexec_cuts_per_execution_page_faults():
  tuned_faults, tunables = _probe()
  default_faults, default_tunables = _probe(**{platform.OPT_OUT_ENV: '0'})
  assert tunables == ':'.join(platform.MALLOC_TUNABLES)
  assert default_tunables == ''
  # Each execution maps its buffers afresh: 4 KiB faults without the tuning (~100 k here), 2 MiB ones with it.
  assert default_faults > 30000, default_faults
  assert tuned_faults < default_faults / 5, (tuned_faults, default_faults)


def test_no_reexec_when_an_accelerator_platform_is_requested(monkeypatch):
  monkeypatch.delenv('GLIBC_TUNABLES', raising=False)
  monkeypatch.delenv(platform.OPT_OUT_ENV, raising=False)
  monkeypatch.setenv('JAX_PLATFORMS', 'cuda')
  monkeypatch.setattr(os, 'execve', lambda *a: pytest.fail('re-exec on an accelerator platform'))
  platform.tune_process()


@pytest.mark.parametrize('chip', [False, True])
def test_libtpu_makes_a_tpu_process_only_with_a_chip(monkeypatch, chip):
  monkeypatch.delenv('JAX_PLATFORMS', raising=False)
  installed = lambda name, *a: types.SimpleNamespace() if name == 'libtpu' else None  # libtpu, no GPU plugin
  monkeypatch.setattr(importlib.util, 'find_spec', installed)
  monkeypatch.setattr(platform, '_tpu_attached', lambda: chip)
  # libtpu on a chipless host (the bench extra's AOT compiles): JAX runs on the CPU, which keeps its malloc tuning.
  assert platform._process_runs_on_cpu() is not chip


def test_tpu_probe_answers_without_importing_jax():
  out = subprocess.run([sys.executable, '-c', 'import sys; from mgdn_jax import platform; '
                        'print(type(platform._tpu_attached()).__name__, "jax" in sys.modules)'],
                       env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True, check=True)
  assert out.stdout.split() == ['bool', 'False']
