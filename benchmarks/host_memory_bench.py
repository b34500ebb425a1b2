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
import argparse
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


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--gb', type=float, default=4., help='size of each mapping in GiB')
  p.add_argument('--gaps', default='0,0,1,3,6', help='comma-separated idle seconds before each re-mapping')
  args = p.parse_args()
  try:
    gaps = [float(g) for g in args.gaps.split(',') if g]
  except ValueError:
    raise SystemExit(f'host_memory_bench: --gaps={args.gaps!r} must be comma-separated seconds') from None
  if args.gb <= 0 or any(g < 0 for g in gaps):
    raise SystemExit(f'host_memory_bench: --gb={args.gb} must be > 0 and --gaps={args.gaps} ≥ 0')
  if not sys.platform.startswith('linux'):
    raise SystemExit(f'host_memory_bench: needs Linux (mmap + madvise), this is {sys.platform}')
  nbytes = int(args.gb * 2**30)
  rows = [['first use', *_rate(first_touch_s(nbytes), args.gb)]]
  for gap in gaps:
    time.sleep(gap)
    rows.append([f'after {gap:g} s idle', *_rate(first_touch_s(nbytes), args.gb)])
  print(f'Machine: {os.cpu_count()} CPU cores, {balloon_driver()}, load {common.load_avg()}\n')
  print(common.markdown_table([f'{args.gb:g} GiB mapping', 'first touch s', 'GiB/s'], rows))


def _rate(seconds: float, gb: float) -> list[str]:
  return [f'{seconds:.2f}', f'{gb / seconds:.1f}']


if __name__ == '__main__':
  main()
