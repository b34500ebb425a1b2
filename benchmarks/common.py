"""Shared helpers of the benchmarks: timing, compile statistics, memory, machine description, markdown tables, and
the comma-list and size flags of their command lines (mgdn_jax/cli.py's convention).

Timing: a jitted function is run `warmup` times (compile + caches), then `repeats` times, each call blocked until
its outputs are ready; the median wall time is reported. Memory: `compiled.memory_analysis()` (temp + argument +
output bytes of the XLA executable: deterministic, independent of the load of the machine) and the process RSS
high-water mark (`resource.getrusage`), which is only meaningful when a case runs in its own process.
"""
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import re
import time
from typing import Any, Callable, Sequence

from absl import flags

# The flags the helpers below define belong to the script that calls them, so `--help` lists them with its own.
flags.disclaim_key_flags()

# Dense peak FLOP/s per chip (bf16/tf32-class tensor-core peak as vendors quote it) for MFU. CPUs have no entry:
# their peak depends on the SKU, the vector width and the clock, so MFU is reported only with --peak_tflops.
PEAK_TFLOPS = {
    'NVIDIA H100 80GB HBM3': 989.0,
    'NVIDIA H200': 989.0,
    'NVIDIA A100-SXM4-80GB': 312.0,
    'NVIDIA A100-SXM4-40GB': 312.0,
    'TPU v4': 275.0,
    'TPU v5 lite': 197.0,
    'TPU v5e': 197.0,
    'TPU v5': 459.0,   # v5p, as libtpu names its devices
    'TPU v5p': 459.0,
    'TPU v6 lite': 918.0,
}

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_avg() -> str:
  """'1m/5m/15m' load average: other work on the machine makes every timing noisy, so tables carry it."""
  return '/'.join(f'{x:.1f}' for x in os.getloadavg())


def machine() -> str:
  import jax  # pylint: disable=g-import-not-at-top
  d = jax.devices()[0]
  from mgdn_jax import platform as mgdn_platform  # pylint: disable=g-import-not-at-top
  tuned = 'malloc tuned' if mgdn_platform.malloc_tuned() else 'default malloc'
  return (f'{jax.default_backend()} / {d.device_kind} ({jax.device_count()} device(s)), {os.cpu_count()} CPU cores, '
          f'jax {jax.__version__}, python {platform.python_version()}, {tuned}')


def peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def device_peak_mb() -> float | None:
  """Peak bytes in use on JAX's first device (accelerators; None where the backend keeps no statistics)."""
  import jax  # pylint: disable=g-import-not-at-top
  stats = jax.devices()[0].memory_stats() or {}
  return stats['peak_bytes_in_use'] / 2**20 if 'peak_bytes_in_use' in stats else None


def block(x: Any) -> Any:
  import jax  # pylint: disable=g-import-not-at-top
  return jax.block_until_ready(x)


def timed_steps(step: Callable[[], Any], steps: int) -> dict:
  """Calls `step()` (which must block until its work is done) `steps` times.

  Returns the median wall seconds per step (`step_s`) and the medians of the process's user and kernel CPU
  seconds and minor page faults per step (`cpu_user_s`, `cpu_sys_s`, `minor_faults`; getrusage, all threads).
  Kernel time is reported because on a CPU backend much of it is page zeroing: every step maps its multi-GB
  buffers afresh (benchmarks/README.md, "Where the CPU step's kernel time goes").
  """
  rows = []
  for _ in range(steps):
    r0, t = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    step()
    wall, r1 = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF)
    rows.append((wall, r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime, r1.ru_minflt - r0.ru_minflt))
  med = lambda i: statistics.median(r[i] for r in rows)
  return dict(step_s=med(0), cpu_user_s=med(1), cpu_sys_s=med(2), minor_faults=med(3))


def median_time(fn: Callable[[], Any], warmup: int = 1, repeats: int = 5) -> float:
  """Median wall seconds of `fn()` (outputs blocked on) after `warmup` untimed calls."""
  for _ in range(warmup):
    block(fn())
  return timed_steps(lambda: block(fn()), repeats)['step_s']


def compile_stats(jitted: Any, *args, **kwargs) -> tuple[Any, dict]:
  """Lowers and compiles `jitted` for `args`; returns (compiled, stats).

  stats: compile_s (trace + lower + XLA compile), mem_mb (temp + argument + output bytes of the executable, minus
  aliased/donated bytes), temp_mb, flops (XLA's cost analysis; None when the backend reports none), jaxpr_flops
  (counted from the traced jaxpr, loops times their trip count: `roofline.py`; not part of compile_s).
  """
  from benchmarks import roofline  # pylint: disable=g-import-not-at-top
  t = time.perf_counter()
  traced = jitted.trace(*args, **kwargs)
  compiled = traced.lower().compile()
  compile_s = time.perf_counter() - t
  stats = dict(compile_s=compile_s, mem_mb=None, temp_mb=None, flops=None,
               jaxpr_flops=roofline.traced_cost(traced).flops)
  m = _optional_analysis(compiled.memory_analysis)
  if m is not None:
    total = (m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes
             - getattr(m, 'alias_size_in_bytes', 0))
    stats.update(mem_mb=total / 2**20, temp_mb=m.temp_size_in_bytes / 2**20)
  cost = _optional_analysis(compiled.cost_analysis)
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  if cost and cost.get('flops', 0) > 0:
    stats['flops'] = float(cost['flops'])
  return compiled, stats


def _optional_analysis(analysis):
  """`analysis()` of a compiled executable, or None on backends that have none (its table columns print n/a)."""
  try:
    return analysis()
  except (NotImplementedError, AttributeError):
    return None


def peak_flops(override_tflops: float = 0.) -> float | None:
  """Peak FLOP/s of one device of the current backend, or None when unknown (CPUs unless overridden)."""
  if override_tflops:
    return override_tflops * 1e12
  import jax  # pylint: disable=g-import-not-at-top
  kind = jax.devices()[0].device_kind
  return PEAK_TFLOPS[kind] * 1e12 if kind in PEAK_TFLOPS else None


def fmt(x: Any, digits: int = 1) -> str:
  if x is None:
    return 'n/a'
  if isinstance(x, float):
    return f'{x:.{digits}f}'
  return str(x)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '|'.join('---' for _ in header) + '|']
  lines += ['| ' + ' | '.join(fmt(c) if not isinstance(c, str) else c for c in r) + ' |' for r in rows]
  return '\n'.join(lines)


def run_isolated(script: str, args: Sequence[str], timeout: float | None = None) -> dict:
  """Runs `python script *args` (which prints one JSON line last) in a fresh process; returns that JSON.

  A fresh process per case makes its RSS high-water mark its own and frees the previous case's executables.
  On failure returns {'error': last stderr line}.
  """
  env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
  try:
    res = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, env=env, check=False,
                         timeout=timeout)
  except subprocess.TimeoutExpired:
    return {'error': f'timed out after {timeout:.0f}s'}
  if res.returncode == -9:
    return {'error': 'killed by SIGKILL (out of memory)'}
  if res.returncode != 0:
    tail = res.stderr.strip().splitlines()[-1:] or [f'exit {res.returncode}']
    return {'error': f'exit {res.returncode}: {tail[0][:200]}'}
  return json.loads(res.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------ command-line flags ---

class _ItemListParser(flags.ListParser):
  """absl's comma list whose items are converted by `item` (str, int, float) and checked against `choices` and
  `lower_bound`; empty items are dropped, so `--tasks=` is the empty list and `--tasks=mff,` is ['mff']."""

  def __init__(self, item: type, choices: Sequence | None, lower_bound: float | None):
    super().__init__()
    self.item, self.choices, self.lower_bound = item, choices, lower_bound
    self.syntactic_help += {int: ' of integers', float: ' of numbers'}.get(item, '')

  def parse(self, argument) -> list:
    items = [x for x in super().parse(argument) if x != '']
    try:
      values = [self.item(x) for x in items]
    except ValueError:
      raise ValueError(f'every item must be {"an integer" if self.item is int else "a number"}') from None
    for v in values:
      if self.choices is not None and v not in self.choices:
        raise ValueError(f'unknown {v!r}; known: {", ".join(map(str, self.choices))}')
      if self.lower_bound is not None and v < self.lower_bound:
        raise ValueError(f'every item must be >= {self.lower_bound:g}')
    return values

  def flag_type(self) -> str:
    return {int: 'comma-separated integers', float: 'comma-separated numbers'}.get(self.item, 'comma-separated list')


class _ItemListSerializer(flags.ArgumentSerializer):
  """Writes a list value back as the command line spells it (`--help`'s defaults): 1 and 0.5, not 1.0 and 0.5."""

  def serialize(self, value) -> str:
    return ','.join(f'{x:g}' if isinstance(x, float) else str(x) for x in value)


def define_list(name: str, default: str, help: str, f: flags.FlagValues, *,  # pylint: disable=redefined-builtin
                item: type = str, choices: Sequence | None = None, lower_bound: float | None = None) -> None:
  """A flag `--name=a,b,…` on `f` whose value is the list of its non-empty items converted by `item`; an item that
  does not convert, is not one of `choices` or is below `lower_bound` is a usage error naming the flag."""
  flags.DEFINE(_ItemListParser(item, choices, lower_bound), name, default, help, f, _ItemListSerializer())


def define_size(name: str, default: str, help: str, f: flags.FlagValues, *,  # pylint: disable=redefined-builtin
                optional: bool = False) -> None:
  """A string flag holding an image size 'HxW' ('1000x1500'; '' too when `optional`): `hw(value)` reads it."""
  flags.DEFINE_string(name, default, help, flag_values=f)
  flags.register_validator(name, lambda v: (optional and not v) or bool(re.fullmatch(r'[1-9]\d*x[1-9]\d*', v)),
                           'must be HxW in pixels, e.g. 1000x1500', flag_values=f)


def hw(size: str) -> tuple[int, int]:
  """(height, width) of an 'HxW' size flag's value."""
  h, w = size.split('x')
  return int(h), int(w)
