"""benchmarks/host_memory_bench.py: the first-touch timer on a small mapping, and its argument checks."""
import sys

import pytest

from benchmarks import host_memory_bench


LINUX_ONLY = pytest.mark.skipif(not sys.platform.startswith('linux'), reason='mmap + madvise timing is Linux-only')


@LINUX_ONLY
def test_first_touch_of_a_small_mapping_takes_positive_time():
  assert host_memory_bench.first_touch_s(8 << 20) > 0


@pytest.mark.parametrize('flag, message', [('--gaps=1,x', 'flag --gaps=1,x: every item must be a number'),
                                           ('--gb=0', 'flag --gb=0.0: must be > 0'),
                                           ('--gaps=-1', 'flag --gaps=-1: every item must be >= 0')])
def test_bad_arguments_are_usage_errors_naming_the_flag(capsys, flag, message):
  with pytest.raises(SystemExit) as e:
    host_memory_bench.main([flag])
  err = capsys.readouterr().err
  assert e.value.code == 2 and err.startswith(f'host_memory_bench: error: {message}'), err


@LINUX_ONLY
def test_small_run_prints_one_row_per_gap(capsys):
  host_memory_bench.main(['--gb=0.01', '--gaps=0,0'])
  out = capsys.readouterr().out
  assert 'first use' in out and out.count('after 0 s idle') == 2 and 'GiB/s' in out
