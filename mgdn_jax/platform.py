"""Process and compiler tuning, each decided from the platform of the devices the work runs on.

Two calls, one per place:
  `tune_process()` — first thing in every entry point: on Linux/glibc, when this process's JAX computations run on
      the host CPU, re-executes it with glibc malloc backing large allocations by transparent huge pages.
      `MGDN_MALLOC_TUNING=0` (the one environment variable of this project) turns it off.
  `train_plan(config, mesh)` — where the training step is built: every backend decision of that step (custom CPU
      VJPs or autodiff, the PFF block's kernels, micro-batches, XLA:CPU compile options, where the initial
      state is computed), taken from `mesh.devices.flat[0].platform`, never from the host's default backend, so
      the step compiles ahead of time for a TPU or GPU mesh on a CPU-only host without any environment variable.
      Opt-outs are config fields (`gradients`, `pff_kernels`, `microbatch_size`, `xla_cpu_ynn_fusion`).

Measurements behind each rule: benchmarks/README.md, "Process and compiler tuning: measurements".
"""
import dataclasses
import functools
import importlib.util
import os
import platform as stdlib_platform
import sys
from typing import Any

# JAX, flax and the kernels are imported inside the train-step functions: entry points import this module to call
# `tune_process` first, and a re-exec would otherwise pay for importing them twice.

OPT_OUT_ENV = 'MGDN_MALLOC_TUNING'

# glibc.malloc.hugetlb=1: glibc madvises its mmap'ed chunks for transparent huge pages. XLA:CPU maps each execution's
# temporary buffer (GBs for a training step) afresh and unmaps it on free, so without huge pages every step
# page-faults its whole working set again, 4 KiB at a time, and the kernel zeroes each page. Keeping the buffers
# resident instead (one arena, no mmap, no trim) removes the faults too but fragments the heap (RSS doubles).
MALLOC_TUNABLES = ('glibc.malloc.hugetlb=1',)
_GPU_PLUGINS = ('jax_cuda12_plugin', 'jax_cuda13_plugin', 'jax_rocm7_plugin', 'jax_rocm60_plugin')

# YNNPACK fuses the elementwise epilogues of matmuls (bias, GELU, LeakyReLU, attention bias/mask) into the dots
# instead of writing and re-reading each intermediate: smaller train-step plans at equal speed. Train step only: it
# enlarges forward-only (inference) plans. Experimental in XLA, hence probed.
_YNN_OPTION = 'xla_cpu_experimental_ynn_fusion_type'
_YNN_VALUE = 'LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION'

# Auto micro-batch on CPU targets: XLA:CPU maps and first-touches an executable's temporary buffer on every run,
# while a loop body's buffers are touched once and reused; below 2 images per device per-op overhead eats the gain.
# Accelerators keep the whole batch (the device is busiest that way).
CPU_IMAGES_PER_DEVICE = 2


# ---------------------------------------------------------------------------------------------------- process ---

def _tpu_attached() -> bool:
  """Whether this host has a TPU chip, by JAX's own test (PCI vendor and device ids, jax/_src/hardware_utils.py).

  That file is loaded on its own (it imports only the standard library): importing jax here would be paid twice
  across the re-exec. Where it cannot be loaded, libtpu being installed counts as a TPU.
  """
  jax_spec = importlib.util.find_spec('jax')
  try:
    path = os.path.join(list(jax_spec.submodule_search_locations)[0], '_src', 'hardware_utils.py')
    spec = importlib.util.spec_from_file_location('_mgdn_jax_hardware_utils', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.num_available_tpu_chips_and_device_id()[0] > 0
  except (AttributeError, ImportError, IndexError, OSError, TypeError):  # a JAX that moved or renamed it
    return True


def _process_runs_on_cpu() -> bool:
  """Whether JAX will pick the CPU in this process, judged before JAX starts (JAX_PLATFORMS, installed plugins).

  libtpu alone does not make a TPU process: installed for ahead-of-time TPU compiles (the bench extra) on a host
  without a chip, JAX still runs on the CPU, and that process wants the CPU's tuning.
  """
  platforms = os.environ.get('JAX_PLATFORMS', '')
  if platforms:
    return 'cpu' in platforms.split(',')[0]
  if any(importlib.util.find_spec(p) is not None for p in _GPU_PLUGINS):
    return False
  return importlib.util.find_spec('libtpu') is None or not _tpu_attached()


def _tunable_names(environ) -> set[str]:
  return {t.split('=')[0] for t in environ.get('GLIBC_TUNABLES', '').split(':') if t}


def malloc_tuned(environ=None) -> bool:
  """Whether `environ` (default os.environ) sets the malloc tunables, ours or the user's own values of them."""
  names = _tunable_names(os.environ if environ is None else environ)
  return all(t.split('=')[0] in names for t in MALLOC_TUNABLES)


def tuned_environ(environ=None) -> dict:
  """`environ` (default os.environ) with the tunables added to GLIBC_TUNABLES; a user's own value of one wins."""
  env = dict(os.environ if environ is None else environ)
  existing = [t for t in env.get('GLIBC_TUNABLES', '').split(':') if t]
  names = _tunable_names(env)
  env['GLIBC_TUNABLES'] = ':'.join(existing + [t for t in MALLOC_TUNABLES if t.split('=')[0] not in names])
  return env


def tune_process() -> None:
  """Re-executes this process (same interpreter and command line) with huge-page-backed malloc when it runs JAX on
  a Linux/glibc CPU; a no-op otherwise, once done, or with MGDN_MALLOC_TUNING=0.

  Call first thing under `if __name__ == '__main__':`, before JAX starts threads or allocates: glibc reads its
  tunables once, at process start.
  """
  if (os.environ.get(OPT_OUT_ENV, '1') == '0' or malloc_tuned() or sys.platform != 'linux'
      or stdlib_platform.libc_ver()[0] != 'glibc' or not _process_runs_on_cpu()):
    return
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, [sys.executable] + sys.orig_argv[1:], tuned_environ())


# ------------------------------------------------------------------------------------------------- train step ---

def target_platform(mesh: Any) -> str:
  """'cpu' | 'gpu' | 'tpu' …: the platform of the devices of `mesh` (also abstract TPU topology devices)."""
  return mesh.devices.flat[0].platform


def resolve_gradients(gradients: str, target: str) -> str:
  """config.gradients for a `target` platform: 'auto' → 'tuned_cpu' on CPU, 'autodiff' elsewhere."""
  from mgdn_jax import kernels  # pylint: disable=g-import-not-at-top
  if gradients == 'auto':
    return kernels.TUNED_CPU if target == 'cpu' else kernels.AUTODIFF
  if gradients not in kernels.GRADIENTS:
    raise ValueError(f"config.gradients={gradients!r}: must be 'auto' or one of {kernels.GRADIENTS}.")
  return gradients


def resolve_pff_kernels(pff_kernels: str, target: str) -> str:
  """config.pff_kernels for a `target` platform: 'auto' → 'pallas_tpu' on TPU (kernels/attention_tpu.py,
  kernels/mlp_tpu.py, kernels/lce_tpu.py), 'xla' elsewhere (the Pallas kernels are Mosaic TPU kernels)."""
  from mgdn_jax import kernels  # pylint: disable=g-import-not-at-top
  if pff_kernels == 'auto':
    return kernels.PALLAS_TPU if target == 'tpu' else kernels.XLA
  if pff_kernels not in kernels.PFF_KERNELS:
    raise ValueError(f"config.pff_kernels={pff_kernels!r}: must be 'auto' or one of {kernels.PFF_KERNELS}.")
  return pff_kernels


def microbatch_size(requested: int, batch: int, devices: int, target: str) -> int:
  """Images per micro-batch: `requested`, or for 0 (auto) 2 per device on CPU and the whole batch elsewhere."""
  if requested:
    return requested
  if target != 'cpu':
    return batch
  size = min(batch, CPU_IMAGES_PER_DEVICE * devices)
  return size if batch % size == 0 else batch


@functools.cache
def _ynn_option_compiles() -> bool:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  cpu = jax.local_devices(backend='cpu')[0]
  try:
    jax.jit(lambda x: x + 1, compiler_options={_YNN_OPTION: _YNN_VALUE}).lower(
        jnp.zeros((), jnp.float32, device=cpu)).compile()
  except jax.errors.JaxRuntimeError:  # an XLA that no longer (or not yet) has the option: default fusion
    return False
  return True


def train_compiler_options(enabled: bool, target: str) -> dict[str, str]:
  """`jax.jit(train_step, compiler_options=...)` for a `target` platform: the YNNPACK dot fusion on CPU when
  `enabled` and this XLA knows the option; {} otherwise, or when the user's XLA_FLAGS set it themselves."""
  if not enabled or target != 'cpu' or _YNN_OPTION in os.environ.get('XLA_FLAGS', ''):
    return {}
  return {_YNN_OPTION: _YNN_VALUE} if _ynn_option_compiles() else {}


def state_device(target: str) -> Any:
  """Where the initial train state is computed: this process's CPU device for every target, or None (jit it on the
  mesh) where JAX has no CPU backend. Initialising op by op on the host skips compiling every initializer's threefry
  (minutes on a small CPU, tens of seconds on an H100); the state is a few MB, one copy to the devices."""
  import jax  # pylint: disable=g-import-not-at-top
  del target  # the host path wins for every measured target
  try:
    return jax.local_devices(backend='cpu')[0]
  except RuntimeError:  # no CPU backend in this process
    return None


@dataclasses.dataclass(frozen=True)
class TrainPlan:
  """The backend decisions of one training step, for one target mesh."""
  platform: str                    # of the mesh's devices
  gradients: str                   # 'tuned_cpu' | 'autodiff' (kernels.dispatch)
  pff_kernels: str                 # PFF attention and MLP: 'xla' | 'pallas_tpu' (kernels.dispatch)
  microbatches: int                # sequential slices of the batch per step (1 = the whole batch)
  compiler_options: dict[str, str]
  state_device: Any               # jax.Device where the initial state is computed (None: jitted on the mesh)


def train_plan(config: Any, mesh: Any) -> TrainPlan:
  """The TrainPlan of `config`'s training step compiled for `mesh` (fields absent from old workdirs' configs: auto)."""
  from mgdn_jax import microbatch  # pylint: disable=g-import-not-at-top
  target = target_platform(mesh)
  size = microbatch_size(config.get('microbatch_size', 0), config.batch_size, mesh.devices.size, target)
  return TrainPlan(
      platform=target,
      gradients=resolve_gradients(config.get('gradients', 'auto'), target),
      pff_kernels=resolve_pff_kernels(config.get('pff_kernels', 'auto'), target),
      microbatches=microbatch.num_microbatches(config.batch_size, size, mesh.devices.size),
      compiler_options=train_compiler_options(config.get('xla_cpu_ynn_fusion', True), target),
      state_device=state_device(target))
