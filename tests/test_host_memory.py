"""The glibc malloc tuning of the entry points: environment merge, re-exec, and the page faults it removes."""
import os
import platform
import subprocess
import sys

import pytest

from mgdn_jax import host_memory

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
glibc_only = pytest.mark.skipif(sys.platform != 'linux' or platform.libc_ver()[0] != 'glibc',
                                reason='glibc tunables exist only on Linux/glibc')

# Runs a jitted step whose buffers (a few MB) are allocated per execution, then prints the minor page faults of
# three more executions and the GLIBC_TUNABLES the process ended up with.
_PROBE = """
import os, resource, jax, jax.numpy as jnp
from mgdn_jax import host_memory
host_memory.tune_and_reexec()
f = jax.jit(lambda x: jnp.cumsum(x @ x, axis=0) @ x)
x = jnp.ones((1024, 1024))
for _ in range(2): f(x).block_until_ready()
r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3): f(x).block_until_ready()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0, os.environ.get('GLIBC_TUNABLES', ''))
"""


def _probe(**env_overrides) -> tuple[int, str]:
  env = {k: v for k, v in os.environ.items() if k not in ('GLIBC_TUNABLES', 'MGDN_MALLOC_TUNED', 'XLA_FLAGS')}
  env.update(JAX_PLATFORMS='cpu', PYTHONPATH=REPO, **env_overrides)
  out = subprocess.run([sys.executable, '-c', _PROBE], env=env, capture_output=True, text=True, check=True)
  faults, _, tunables = out.stdout.strip().splitlines()[-1].partition(' ')
  return int(faults), tunables


def test_tuned_environ_keeps_user_settings_and_marks():
  env = host_memory.tuned_environ({'GLIBC_TUNABLES': 'glibc.malloc.arena_max=4:glibc.rtld.nns=8', 'A': 'b'})
  parts = env['GLIBC_TUNABLES'].split(':')
  assert parts[:2] == ['glibc.malloc.arena_max=4', 'glibc.rtld.nns=8']  # the user's value wins
  assert 'glibc.malloc.mmap_max=0' in parts and 'glibc.malloc.arena_max=1' not in parts
  assert env['MGDN_MALLOC_TUNED'] == '1' and env['A'] == 'b'
  assert host_memory.tuned_environ({})['GLIBC_TUNABLES'] == ':'.join(host_memory.TUNABLES)


@glibc_only
def test_reexec_removes_per_step_page_faults():
  tuned_faults, tunables = _probe()
  default_faults, default_tunables = _probe(MGDN_MALLOC_TUNING='0')
  assert tunables == ':'.join(host_memory.TUNABLES)
  assert default_tunables == ''
  # Without the tuning each execution maps its buffers afresh (thousands of faults); with it, they are reused.
  assert default_faults > 1000, default_faults
  assert tuned_faults < default_faults / 10, (tuned_faults, default_faults)


def test_no_reexec_when_an_accelerator_platform_is_requested(monkeypatch):
  monkeypatch.delenv('MGDN_MALLOC_TUNED', raising=False)
  monkeypatch.delenv('MGDN_MALLOC_TUNING', raising=False)
  monkeypatch.setenv('JAX_PLATFORMS', 'cuda')
  monkeypatch.setattr(os, 'execve', lambda *a: pytest.fail('re-exec on an accelerator platform'))
  host_memory.tune_and_reexec()
