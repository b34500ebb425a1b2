"""benchmarks/aot_tpu.py: the training loop's own step compiles ahead of time for a TPU slice on this CPU-only host,
on the accelerator path (autodiff gradients, the Pallas PFF kernels, the whole batch, no XLA:CPU options, no host
calls), and fits in HBM."""
import importlib.util
import json

import jax
import pytest

from benchmarks import aot_tpu
from mgdn_jax import sharding, train

needs_libtpu = pytest.mark.skipif(
    importlib.util.find_spec('libtpu') is None,
    reason='libtpu is absent: it compiles for TPU topologies (pip install -e .[bench], which adds jax[tpu])')

_HLO = """HloModule m, is_scheduled=true, entry_computation_layout={(f32[4]{0})->f32[4]{0}}

%fused_inner (p: f32[4]) -> f32[4] {
  %p = f32[4]{0} parameter(0)
  ROOT %e = f32[4]{0} exponential(%p)
}

%fused_outer (p: f32[4]) -> f32[4] {
  %p = f32[4]{0} parameter(0)
  ROOT %f = f32[4]{0} fusion(%p), kind=kLoop, calls=%fused_inner
}

%body (t: (s32[], f32[4])) -> (s32[], f32[4]) {
  %t = (s32[], f32[4]{0}) parameter(0)
  %x = f32[4]{0} get-tuple-element(%t), index=1
  %y = (f32[4]{0}, /*index=1*/f32[4]{0}) fusion(%x), kind=kLoop, calls=%fused_outer
}

ENTRY %main (a: f32[4]) -> f32[4] {
  %a = f32[4]{0} parameter(0)
  %b = f32[4]{0} fusion(%a), kind=kOutput, calls=%fused_outer
  %c = f32[4]{0} custom-call(%b), custom_call_target="AllocateBuffer"
  ROOT %d = f32[4]{0} fusion(%c), kind=kLoop, calls=%fused_inner
}
"""


def test_fusions_count_kernels_outside_fused_computations():
  # ENTRY's two and the loop body's one; the one nested in %fused_outer is part of a kernel (all_fusions counts it).
  assert aot_tpu.hlo_stats(_HLO) == dict(fusions=3, entry_fusions=2, all_fusions=4, custom_calls=['AllocateBuffer'])


def test_table_from_prints_saved_rows_and_compiles_nothing(tmp_path, capsys):
  path = tmp_path / 'aot.json'
  path.write_text(json.dumps([dict(task='mff', topology='v5e:2x2', error='exit 1: boom')]))
  aot_tpu.main([f'--table_from={path},{path}'])
  lines = capsys.readouterr().out.splitlines()
  assert lines[0].startswith('| task | topology (chips) |') and len(lines) == 4  # header, rule, a row per file
  assert all(line.startswith('| mff | v5e:2x2 | exit 1: boom |') for line in lines[2:])


@needs_libtpu
def test_tiny_train_step_compiles_for_v5e_on_the_accelerator_path():
  mesh = aot_tpu.topology_mesh('v5e:2x2')
  assert mesh.devices.size == 4 and mesh.devices.flat[0].platform == 'tpu'
  config = aot_tpu.task_config('mff', 'tiny', batch_per_chip=1, chips=4, patch=16, dtype='')
  # The same config built for a 4-device CPU mesh first: the TPU build must not be handed its plan (train.build
  # memoises per mesh; the topology's devices are numbered 0–3 like the CPUs).
  assert train.build(config, sharding.make_mesh(jax.devices()[:4])).plan.gradients == 'tuned_cpu'
  row = aot_tpu.compile_train(config, mesh)
  assert row['device_kind'] == 'TPU v5 lite' and row['global_batch'] == 4
  assert row['plan']['platform'] == 'tpu'
  assert (row['plan']['gradients'], row['plan']['microbatches'], row['plan']['compiler_options']) == ('autodiff', 1, {})
  assert row['plan']['pff_kernels'] == 'pallas_tpu' and 'tpu_custom_call' in row['custom_calls']  # Mosaic compiled it
  assert row['host_calls'] == [], row['custom_calls']
  assert row['fits'] and 0 < row['peak_bytes'] <= row['hbm_need_bytes'] < row['hbm_bytes']
  assert row['flops'] > 0 and row['bytes_accessed'] > 0 and row['roofline_images_s'] > 0
  assert row['fusions'] >= row['entry_fusions'] > 0


@needs_libtpu
def test_each_pff_part_moves_fewer_bytes_with_the_pallas_kernels(capsys):
  """benchmarks/pff_kernels_tpu.py on MFF's block at 16² per chip: every part and the block compile both ways, and
  the kernels cut each one's HBM traffic (the paper-size numbers are in benchmarks/README.md)."""
  from benchmarks import pff_kernels_tpu  # pylint: disable=g-import-not-at-top
  rows = pff_kernels_tpu.measure('mff', 'v5e:2x2', images_per_chip=1, patch=16)
  got = {(r['part'], r['pff_kernels']): r for r in rows}
  assert set(got) == {(p, k) for p in pff_kernels_tpu.PARTS for k in ('xla', 'pallas_tpu')}
  for part in pff_kernels_tpu.PARTS:
    assert 0 < got[part, 'pallas_tpu']['bytes'] < got[part, 'xla']['bytes'], part
  assert 'block' in capsys.readouterr().out
