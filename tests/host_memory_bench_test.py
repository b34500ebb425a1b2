"""benchmarks/host_memory_bench.py: the first-touch timer on a small mapping, and its argument checks."""
import sys

import pytest

from benchmarks import host_memory_bench


LINUX_ONLY = pytest.mark.skipif(not sys.platform.startswith('linux'), reason='mmap + madvise timing is Linux-only')


@LINUX_ONLY
def test_first_touch_of_a_small_mapping_takes_positive_time():
  assert host_memory_bench.first_touch_s(8 << 20) > 0


@LINUX_ONLY
def test_small_run_prints_one_row_per_gap(capsys):
  host_memory_bench.main(['--gb=0.01', '--gaps=0,0'])
  out = capsys.readouterr().out
  assert 'first use' in out and out.count('after 0 s idle') == 2 and 'GiB/s' in out
