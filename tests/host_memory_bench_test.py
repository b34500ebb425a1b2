"""benchmarks/host_memory_bench.py: the first-touch timer on a small mapping, and its argument checks."""
import sys

import pytest

from benchmarks import host_memory_bench


LINUX_ONLY = pytest.mark.skipif(not sys.platform.startswith('linux'), reason='mmap + madvise timing is Linux-only')


@LINUX_ONLY
def test_first_touch_of_a_small_mapping_takes_positive_time():
  assert host_memory_bench.first_touch_s(8 << 20) > 0


@pytest.mark.parametrize('flag, message', [('--gaps=1,x', "--gaps='1,x'"), ('--gb=0', '--gb=0.0'),
                                           ('--gaps=-1', '≥ 0')])
def test_bad_arguments_fail_with_one_line(monkeypatch, flag, message):
  monkeypatch.setattr(sys, 'argv', ['host_memory_bench.py', flag])
  with pytest.raises(SystemExit, match=message):
    host_memory_bench.main()


@LINUX_ONLY
def test_small_run_prints_one_row_per_gap(monkeypatch, capsys):
  monkeypatch.setattr(sys, 'argv', ['host_memory_bench.py', '--gb=0.01', '--gaps=0,0'])
  host_memory_bench.main()
  out = capsys.readouterr().out
  assert 'first use' in out and out.count('after 0 s idle') == 2 and 'GiB/s' in out
