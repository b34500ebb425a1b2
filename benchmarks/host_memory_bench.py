"""How fast this machine hands out fresh memory: first-touch GB/s of a new anonymous mapping, by idle gap.

  python benchmarks/host_memory_bench.py                      # 4 GB, gaps 0,0,1,3,6 s
  python benchmarks/host_memory_bench.py --gb=2 --gaps=0,3    # quick

Why: XLA:CPU maps each training step's temporary buffer (GBs) afresh and unmaps it at the end (glibc serves such
sizes with mmap), so every step pays the kernel for zeroing the pages it touches first. On a bare machine that
is memory bandwidth; in a VM whose balloon driver reports free pages to the host, pages that stayed free for a
few seconds come back through the hypervisor, many times slower. This script measures both cases: a mapping
is touched page by page (huge pages requested, as `mgdn_jax.platform.tune_process` makes glibc do), unmapped, and after
`gap` seconds of idling a new mapping of the same size is touched again. The first row is the process's first
use of that much memory. Linux only.
"""
import ctypes
import mmap
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import common  # pylint: disable=g-import-not-at-top,wrong-import-position

_MADV_HUGEPAGE = 14


def first_touch_s(nbytes: int) -> float:
  """Seconds to write one byte per 4 KiB page of a fresh private anonymous mapping of `nbytes` (THP advised)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  m = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
  try:
    a = np.frombuffer(m, dtype=np.uint8)
    ctypes.CDLL(None).madvise(ctypes.c_void_p(a.ctypes.data), ctypes.c_size_t(nbytes), _MADV_HUGEPAGE)
    t = time.perf_counter()
    a[::4096] = 1
    elapsed = time.perf_counter() - t
    del a
  finally:
    m.close()
  return elapsed


def balloon_driver() -> str:
  """Whether a virtio balloon driver is bound (free page reporting to a hypervisor is then possible)."""
  path = '/sys/bus/virtio/drivers/virtio_balloon'
  bound = os.path.isdir(path) and any(e.startswith('virtio') for e in os.listdir(path))
  return 'virtio balloon bound' if bound else 'no virtio balloon'


PROG = 'host_memory_bench'


def define_flags(f) -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_float('gb', 4., 'size of each mapping in GiB', flag_values=f)
  flags.register_validator('gb', lambda v: v > 0, 'must be > 0', flag_values=f)
  common.define_list('gaps', '0,0,1,3,6', 'comma-separated idle seconds before each re-mapping', f, item=float,
                     lower_bound=0)


def main(argv=None) -> None:
  from mgdn_jax import cli  # pylint: disable=g-import-not-at-top
  args, _ = cli.parse(PROG, __doc__, define_flags, argv)
  if not sys.platform.startswith('linux'):
    cli.fail(PROG, f'needs Linux (mmap + madvise), this is {sys.platform}')
  nbytes = int(args.gb * 2**30)
  rows = [['first use', *_rate(first_touch_s(nbytes), args.gb)]]
  for gap in args.gaps:
    time.sleep(gap)
    rows.append([f'after {gap:g} s idle', *_rate(first_touch_s(nbytes), args.gb)])
  print(f'Machine: {os.cpu_count()} CPU cores, {balloon_driver()}, load {common.load_avg()}\n')
  print(common.markdown_table([f'{args.gb:g} GiB mapping', 'first touch s', 'GiB/s'], rows))


def _rate(seconds: float, gb: float) -> list[str]:
  return [f'{seconds:.2f}', f'{gb / seconds:.1f}']


if __name__ == '__main__':
  main()
