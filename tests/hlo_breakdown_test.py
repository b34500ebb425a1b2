"""benchmarks/hlo_breakdown.py: kernels of a compiled module are charged to the project function that emitted them."""
import jax
import jax.numpy as jnp

from benchmarks import hlo_breakdown

_OWNERS = ('tests/hlo_breakdown_test.py',)


def _wide_layer(x):
  return jnp.tanh(x @ x.T) * 2.0


def _narrow_layer(x):
  return jnp.sum(jnp.exp(x), axis=0)


def _step(x):
  # Both results leave the step, so the (256, 256) product is materialised and the layers are separate kernels
  # (XLA:CPU fuses a step that returns only the sum into one).
  wide = _wide_layer(x)
  return wide, _narrow_layer(wide)


def _compiled_text():
  return jax.jit(_step).lower(jnp.zeros((256, 64), jnp.float32)).compile().as_text()


def test_shape_bytes_sums_arrays_and_tuples():
  assert hlo_breakdown.shape_bytes('f32[4,8]{1,0}') == 128
  assert hlo_breakdown.shape_bytes('(bf16[2,3]{1,0}, pred[5]{0}, s32[])') == 12 + 5 + 4


def test_kernels_are_charged_to_the_function_that_emitted_them():
  rows = {r['owner'].split(':')[-1]: r for r in hlo_breakdown.breakdown(_compiled_text(), _OWNERS)}
  assert {'_wide_layer', '_narrow_layer'} <= set(rows), rows
  # The wide layer writes the (256, 256) product and rewrites it scaled; the narrow one reads it once.
  assert rows['_wide_layer']['bytes'] >= 3 * 256 * 256 * 4
  assert rows['_wide_layer']['bytes'] > rows['_narrow_layer']['bytes'] >= 256 * 256 * 4
  assert all(r['kernels'] >= r['fusions'] >= 0 for r in rows.values())


def test_unowned_kernels_and_the_table():
  rows = hlo_breakdown.breakdown(_compiled_text(), owners=('no/such/file.py',))
  assert [r['owner'] for r in rows] == ['(no project frame)']
  text = hlo_breakdown.table(rows + rows, xla_bytes=1e9, top=1)
  assert '(1 more)' in text and text.splitlines()[-1].startswith('| total |') and '(XLA: 1.00)' in text


def test_a_frameless_kernel_takes_the_frame_of_its_user():
  hlo = """HloModule m
FileNames
1 "/repo/mgdn_jax/layers/mgca.py"
FunctionNames
1 "MGCA.__call__"
FileLocations
1 {file_name_id=1 function_name_id=1 line=3 end_line=3 column=1 end_column=1}
StackFrames
1 {file_location_id=1 parent_frame_id=0}

%fused (p: f32[4]) -> f32[4] {
  %p = f32[4]{0} parameter(0)
  ROOT %e = f32[4]{0} exponential(%p)
}

ENTRY %main (a: f32[4]) -> f32[4] {
  %a = f32[4]{0} parameter(0)
  %c = (f32[4]{0}, f32[4]{0}, u32[]) copy-start(%a)
  %d = f32[4]{0} copy-done(%c)
  ROOT %f = f32[4]{0} fusion(%d), kind=kLoop, calls=%fused, metadata={op_name="exp" stack_frame_id=1}
}
"""
  kernels = hlo_breakdown.kernels(hlo)
  assert [(k.name, k.op, k.bytes) for k in kernels] == [('c', 'copy-start', 2 * 16), ('f', 'fusion', 32)]
  assert {hlo_breakdown.owner(k) for k in kernels} == {'mgdn_jax/layers/mgca.py:MGCA.__call__'}


def test_shape_bytes_pads_dimensions_to_the_layout_tile():
  # Minor-to-major {1,0}: dimension 1 (60) is the lane dimension, padded to 128; dimension 0 (4) to 8 sublanes.
  assert hlo_breakdown.shape_bytes('f32[4,60]{1,0:T(8,128)}') == 8 * 128 * 4
  assert hlo_breakdown.shape_bytes('f32[4,60]{0,1:T(8,128)}') == 128 * 64 * 4
