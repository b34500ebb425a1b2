"""Parity with the official PyTorch MGDN: outputs, MGDF features (S) and gradients of the official fixtures."""
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mgdn_jax import convert, kernels, platform
from mgdn_jax.layers import pff
from conftest import OFFICIAL_LYTRO_FIXTURE, shared_file

# Gradients compile as the training step does on these CPU devices: parity must hold for what users actually run.
TRAIN_OPTIONS = platform.train_compiler_options(True, "cpu")

TASK = {"MGFF": "mef", "MGFF_GDSR": "gdsr", "MGFF_Deghosting": "hdr"}
LOCAL = ["mini_fusion", "mini_gdsr", "mini_hdr"]
FULL = ["full_MEF", "full_MFF", "full_HDR", "full_GDSR_x4x8", "full_GDSR_x16"]


def _load(path):
  z = np.load(path)
  meta = json.loads(str(z["meta"]))
  state_dict = {k[len("param/"):]: z[k] for k in z.files if k.startswith("param/")}
  # MEF and MFF share the official class; the converter tells them apart by their official dimensions.
  task = "mff" if "mff" in pathlib.Path(path).name.lower() else TASK[meta["class_name"]]
  model = convert.from_official(state_dict, meta["constructor_kwargs"], task)
  inputs = [jnp.asarray(z[f"input/{i}"].transpose(0, 2, 3, 1)) for i in range(len(meta["input_shapes"]))]
  return z, model, inputs


def _nhwc(a):
  return a.transpose(0, 2, 3, 1)


def _check_forward(z, model, inputs):
  graphdef, state = nnx.split(model)
  out, feats = jax.jit(lambda s, *x: nnx.merge(graphdef, s)(*x))(state, *inputs)
  np.testing.assert_allclose(np.asarray(out), _nhwc(z["output"]), atol=1e-5, rtol=0)
  n_stages = len([k for k in z.files if k.startswith("S/stage") and k.endswith("/0")])
  assert len(feats) == n_stages
  for i, stage in enumerate(feats):
    for j, s in enumerate(stage):
      np.testing.assert_allclose(np.asarray(s), _nhwc(z[f"S/stage{i}/{j}"]), atol=1e-4, rtol=0,
                                 err_msg=f"S/stage{i}/{j}")


@pytest.mark.parametrize("name", LOCAL)
def test_fixture_forward(testdata_dir, name):
  _check_forward(*_load(testdata_dir / "fixtures" / f"{name}.npz"))


def test_official_weights_on_lytro_forward():
  """The released MFF weights on a real Lytro crop (both third-party: read from ../shared)."""
  _check_forward(*_load(shared_file(OFFICIAL_LYTRO_FIXTURE)))


@pytest.mark.parametrize("name", FULL)
def test_full_fixture_forward(shared_dir, name):
  _check_forward(*_load(shared_dir / "reference" / "fixtures" / f"{name}.npz"))


@pytest.mark.parametrize("gradients", kernels.GRADIENTS)
@pytest.mark.parametrize("name", ["mini_fusion", "mini_gdsr", "mini_hdr"])
def test_fixture_gradients(testdata_dir, name, gradients):
  """d mean|out − gt| / d θ for every parameter, within 1e-4 of each tensor's max |grad|.

  Known residual: in the 3-stage nets (mini_gdsr, mini_hdr) the stage-0 MGCA / kernel-predictor gradients, which
  are 1e-4–1e-6 of the network's largest gradient, differ from the official float32 values by 0.1–0.8 % of their
  own size (our float64 and float32 gradients agree with each other there; forward outputs and S match to 1e-7).
  The tolerance therefore has an absolute floor of 2e-6 × the network's largest gradient.
  """
  z, model, inputs = _load(testdata_dir / "fixtures" / f"{name}.npz")
  kernels.set_gradients(model, gradients)
  _check_gradients(z, model, inputs)


def test_fixture_forward_and_gradients_with_the_pallas_pff_kernels(testdata_dir):
  """The TPU training step's path (autodiff gradients, Pallas PFF kernels), its kernels run in Pallas's interpreter.
  One fixture: the kernels are the same in every task's PFF blocks (tests/pff_kernels_test.py covers their shapes)."""
  z, model, inputs = _load(testdata_dir / "fixtures" / "mini_fusion.npz")
  kernels.set_gradients(model, kernels.AUTODIFF)
  pff.use_kernels(model, kernels.PALLAS_TPU)
  _check_forward(z, model, inputs)
  _check_gradients(z, model, inputs)


def _check_gradients(z, model, inputs):
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  gt = jnp.asarray(_nhwc(z["gt"]))

  def loss_fn(p):
    out, _ = nnx.merge(graphdef, p, rest)(*inputs)
    return jnp.mean(jnp.abs(out - gt))

  loss, grads = jax.jit(jax.value_and_grad(loss_fn), compiler_options=TRAIN_OPTIONS)(params)
  np.testing.assert_allclose(float(loss), float(z["loss_l1"]), rtol=1e-5)
  ours = {".".join(map(str, k)): np.asarray(v[...]) for k, v in nnx.to_flat_state(grads)}
  compared = set()
  floor = 2e-6 * max(np.abs(z[k]).max() for k in z.files if k.startswith("grad/"))
  for key in z.files:
    if not key.startswith("grad/"):
      continue
    mapped = convert._our_name(key[len("grad/"):])  # pylint: disable=protected-access
    if mapped is None or mapped[0] not in ours:
      assert not np.any(z[key]), f"{key} has a gradient but no counterpart"
      continue
    path, kind = mapped
    theirs = convert._to_ours(z[key], kind)  # pylint: disable=protected-access
    err = np.abs(ours[path] - theirs).max()
    tol = 1e-4 * np.abs(theirs).max() + floor
    assert err <= tol, f"{key} → {path}: max error {err:.2e} > tolerance {tol:.2e}"
    compared.add(path)
  assert compared == set(ours), f"parameters without an official gradient: {sorted(set(ours) - compared)}"
