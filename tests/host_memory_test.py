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


def _thp_mode() -> str:
  try:
    with open('/sys/kernel/mm/transparent_hugepage/enabled') as f:
      return f.read().split('[')[1].split(']')[0]
  except (OSError, IndexError):
    return 'never'

# Runs a jitted function whose 64 MB buffers (above glibc's mmap threshold, like a training step's) are allocated
# per execution, then prints the minor page faults of three more executions and the process's GLIBC_TUNABLES.
_PROBE = """
import os, resource, jax, jax.numpy as jnp
from mgdn_jax import host_memory
host_memory.tune_and_reexec()
f = jax.jit(lambda x: jnp.cumsum(jnp.cumsum(x, axis=0)[::-1], axis=1))
x = jnp.ones((4096, 4096))
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
  assert env['GLIBC_TUNABLES'].split(':') == ['glibc.malloc.arena_max=4', 'glibc.rtld.nns=8', 'glibc.malloc.hugetlb=1']
  kept = host_memory.tuned_environ({'GLIBC_TUNABLES': 'glibc.malloc.hugetlb=0'})
  assert kept['GLIBC_TUNABLES'] == 'glibc.malloc.hugetlb=0'  # the user's value wins
  assert env['MGDN_MALLOC_TUNED'] == '1' and env['A'] == 'b'
  assert host_memory.tuned_environ({})['GLIBC_TUNABLES'] == ':'.join(host_memory.TUNABLES)


@glibc_only
@pytest.mark.skipif(_thp_mode() == 'never', reason='transparent huge pages are disabled on this machine')
def test_reexec_cuts_per_execution_page_faults():
  tuned_faults, tunables = _probe()
  default_faults, default_tunables = _probe(MGDN_MALLOC_TUNING='0')
  assert tunables == ':'.join(host_memory.TUNABLES)
  assert default_tunables == ''
  # Each execution maps its buffers afresh: 4 KiB faults without the tuning (~100 k here), 2 MiB ones with it.
  assert default_faults > 30000, default_faults
  assert tuned_faults < default_faults / 5, (tuned_faults, default_faults)


def test_no_reexec_when_an_accelerator_platform_is_requested(monkeypatch):
  monkeypatch.delenv('MGDN_MALLOC_TUNED', raising=False)
  monkeypatch.delenv('MGDN_MALLOC_TUNING', raising=False)
  monkeypatch.setenv('JAX_PLATFORMS', 'cuda')
  monkeypatch.setattr(os, 'execve', lambda *a: pytest.fail('re-exec on an accelerator platform'))
  host_memory.tune_and_reexec()
