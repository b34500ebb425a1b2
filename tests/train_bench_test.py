"""benchmarks/train_bench.py: the configuration it measures and its table (no step is run)."""
from benchmarks import common, train_bench


def test_train_config_sets_batch_size_dtype_and_mi_weight():
  config = train_bench.train_config('hdr', 2, 64, without_mi_loss=True, dtype='bfloat16')
  assert (config.batch_size, config.patch_size, config.model.dtype, config.mi_weight) == (2, 64, 'bfloat16', 0.)
  assert train_bench.train_config('mff', 4, 128).model.dtype == 'float32'
  assert train_bench.train_config('mff', 4, 128, microbatch_size=2).microbatch_size == 2


def test_train_table_names_dtype_ops_and_device_memory():
  row = dict(task='hdr', batch=4, size=128, dtype='bfloat16', ops_gradients='autodiff', mi_loss=True, step_s=0.0622,
             steps_per_s=16.07, images_per_s=64.3, step_gflop=494.9, gflops_per_s=7952., mfu=0.008, mem_mb=5924.,
             device_peak_mb=5925., rss_mb=2500., compile_s=96.8, load='3.9/1.3/0.5', cpu_user_s=15.44,
             cpu_sys_s=3.31)
  header, _, line = train_bench.train_table([row, {'task': 'mef', 'error': 'exit 1: boom'}]).splitlines()[:3]
  assert '| dtype |' in header and '| device peak MB |' in header and '| GFLOP/step (jaxpr / XLA) |' in header
  assert '| n/a / 494.9 |' in line  # JSON from before the jaxpr count held XLA's count alone
  counted = train_bench.train_table([dict(row, step_gflop=817.2, xla_gflop=494.9)]).splitlines()[2]
  assert '| 817.2 / 494.9 |' in counted
  assert '| bfloat16, autodiff ops | 62.2 |' in line and '| 0.8% |' in line and '| 5925.0 |' in line
  assert '| CPU s/step user / kernel |' in header and '| 0.8% | 15.4 / 3.3 |' in line
  older = dict(row, cpu_user_s=None, cpu_sys_s=None)  # JSON from before the CPU-time columns
  assert '| 0.8% | n/a |' in train_bench.train_table([older]).splitlines()[2]
  split = train_bench.train_table([dict(row, microbatches=2)]).splitlines()[2]
  assert split.startswith('| hdr | 4 × 128² in 2 micro-batches | bfloat16')
  assert line.startswith('| hdr | 4 × 128² | bfloat16')  # rows without the field (older JSON) or unsplit steps
  last = train_bench.train_table([{'task': 'mef', 'error': 'exit 1: boom'}]).splitlines()[2]
  assert last.count('|') == header.count('|') and 'boom' in last


def test_timed_steps_reports_wall_and_cpu_medians():
  calls = []
  timing = common.timed_steps(lambda: calls.append(sum(range(20000))), 3)
  assert len(calls) == 3
  assert set(timing) == {'step_s', 'cpu_user_s', 'cpu_sys_s', 'minor_faults'}
  assert timing['step_s'] > 0 and timing['cpu_user_s'] >= 0 and timing['cpu_sys_s'] >= 0
  assert timing['minor_faults'] >= 0
