"""Tests of mgdn_jax.losses: reconstruction losses, the NMI estimator and the masked MI loss module."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mgdn_jax import losses
from mgdn_jax import tonemap


def _uniform(seed, shape):
  return jax.random.uniform(jax.random.key(seed), shape, jnp.float32)


# ---------------------------------------------------------------------------------------------------- L1 / μ-law
def test_l1_loss_known_value_and_bf16():
  pred = jnp.array([[0., 1.], [2., 3.]])
  target = jnp.array([[1., 1.], [0., 3.]])
  assert float(losses.l1_loss(pred, target)) == pytest.approx(0.75)
  out = losses.l1_loss(pred.astype(jnp.bfloat16), target.astype(jnp.bfloat16))
  assert out.dtype == jnp.float32 and float(out) == pytest.approx(0.75)


def test_mu_law_known_values():
  x = jnp.array([0., 1., 0.5, 1e-3])
  want = np.log1p(5000. * np.array([0., 1., 0.5, 1e-3])) / np.log(5001.)
  np.testing.assert_allclose(tonemap.mu_law_jax(x), want, rtol=1e-6, atol=1e-7)
  assert float(tonemap.mu_law_jax(jnp.array(0.))) == 0.
  assert float(tonemap.mu_law_jax(jnp.array(1.))) == pytest.approx(1., abs=1e-6)
  assert float(tonemap.mu_law_jax(jnp.array(1.), mu=10.)) == pytest.approx(1., abs=1e-6)
  assert tonemap.mu_law_jax(x.astype(jnp.bfloat16)).dtype == jnp.float32


def test_mu_law_numpy_and_jax_forms_agree():
  x = np.concatenate([np.linspace(0., 1., 1001), [1e-6, 1e-4, 2.5]]).astype(np.float32)
  np_form = tonemap.mu_law(x)
  assert np_form.dtype == np.float32
  np.testing.assert_allclose(np_form, np.log1p(5000. * x.astype(np.float64)) / np.log(5001.), rtol=2e-6, atol=1e-7)
  np.testing.assert_allclose(np.asarray(tonemap.mu_law_jax(jnp.asarray(x))), np_form, rtol=2e-6, atol=1e-7)


def test_mu_law_l1_loss_known_value():
  pred = jnp.array([0., 1.]).reshape(1, 1, 2, 1)
  target = jnp.array([1., 1.]).reshape(1, 1, 2, 1)
  assert float(losses.mu_law_l1_loss(pred, target)) == pytest.approx(0.5, abs=1e-6)
  # Tonemapping amplifies dark errors: the same linear error costs more near 0 than near 1.
  dark = losses.mu_law_l1_loss(jnp.full((4,), 0.01), jnp.full((4,), 0.02))
  bright = losses.mu_law_l1_loss(jnp.full((4,), 0.98), jnp.full((4,), 0.99))
  assert float(dark) > 10 * float(bright)


def test_reconstruction_losses_reject_shape_mismatch():
  with pytest.raises(ValueError, match='l1_loss: pred shape'):
    losses.l1_loss(jnp.zeros((1, 4, 4, 3)), jnp.zeros((1, 4, 4, 1)))
  with pytest.raises(ValueError, match='mu_law_l1_loss: pred shape'):
    losses.mu_law_l1_loss(jnp.zeros((2, 3)), jnp.zeros((3, 2)))


# ---------------------------------------------------------------------------------------------------- mi_pairs
def test_mi_pairs():
  assert losses.mi_pairs('mutual', 2, 0) == ((0, 1),)
  assert losses.mi_pairs('mutual', 3, 1) == ((0, 1), (0, 2), (1, 2))
  assert losses.mi_pairs('reference', 3, 1) == ((1, 0), (1, 2))
  assert losses.mi_pairs('reference', 2, 0) == ((0, 1),)
  with pytest.raises(ValueError, match="guidance must be 'mutual' or 'reference'"):
    losses.mi_pairs('cross', 2, 0)
  with pytest.raises(ValueError, match='reference_stream=3 not in'):
    losses.mi_pairs('reference', 3, 3)
  with pytest.raises(ValueError, match='num_streams must be >= 2'):
    losses.mi_pairs('mutual', 1, 0)


# ---------------------------------------------------------------------------------------------------- estimator
def test_soft_joint_histogram_is_a_distribution_close_to_the_hard_one():
  v1, v2 = _uniform(0, (2, 2048)), _uniform(1, (2, 2048)) ** 2
  joint = losses.soft_joint_histogram(v1, v2, 8, 0.25 / 8)
  np.testing.assert_allclose(jnp.sum(joint, axis=(1, 2)), 1., rtol=1e-5)
  hard = np.stack([np.histogram2d(np.asarray(a), np.asarray(b), bins=8, range=[[0, 1], [0, 1]])[0] / 2048
                   for a, b in zip(v1, v2)])
  np.testing.assert_allclose(joint, hard, atol=0.02)


def test_nmi_self_high_independent_low_and_ordered():
  nmi = lambda a, b: losses.normalized_mutual_information(a, b, num_bins=32)  # noqa: E731
  x, y = _uniform(0, (2, 4096)), _uniform(1, (2, 4096))
  self_nmi, noise_nmi = nmi(x, x), nmi(x, y)
  assert self_nmi.shape == (2,)
  assert np.all(self_nmi > 0.65) and np.all(self_nmi <= 1.)  # Parzen smoothing caps it below 1 (≈0.70)
  assert np.all(noise_nmi >= 0.) and np.all(noise_nmi < 0.03)
  # Any bijection keeps all the information; added noise loses part of it.
  assert np.all(np.abs(nmi(x, 1. - x) - self_nmi) < 0.02)
  partial = nmi(x, jnp.clip(x + 0.3 * y, 0., 1.))
  assert np.all(partial < self_nmi - 0.1) and np.all(partial > noise_nmi + 0.1)
  # A sharper kernel moves the self-NMI towards 1.
  assert np.all(losses.normalized_mutual_information(x, x, num_bins=32, bandwidth=0.2 / 32) > 0.85)


def test_nmi_of_constant_maps_is_zero_not_nan():
  out = losses.normalized_mutual_information(jnp.zeros((1, 64)), jnp.zeros((1, 64)))
  assert np.isfinite(out).all() and float(out[0]) == pytest.approx(0., abs=1e-5)


def test_sobel_gradients():
  const = jnp.full((1, 6, 7, 1), 3.)
  np.testing.assert_allclose(losses.sobel_gradients(const), 0.)
  ramp = jnp.broadcast_to(2. * jnp.arange(7.)[None, None, :, None], (1, 6, 7, 1))  # slope 2 along W
  g = losses.sobel_gradients(ramp)
  np.testing.assert_allclose(g[0, :, 1:-1, 0], 2. * 8.)  # Sobel gain 8 per unit slope
  np.testing.assert_allclose(losses.sobel_gradients(jnp.swapaxes(ramp, 1, 2))[0, 1:-1, :, 0], 16.)


# ---------------------------------------------------------------------------------------------------- module
def _jitted(mi):
  """mi(S) through nnx.split/merge under jax.jit, the way the train step calls it (and fast on CPU)."""
  graphdef, state = nnx.split(mi)
  return jax.jit(lambda S: nnx.merge(graphdef, state)(S))


def _stages(num_stages, num_streams, shape, seed, same=False):
  keys = jax.random.split(jax.random.key(seed), num_stages * num_streams)
  out = []
  for n in range(num_stages):
    xs = [jax.random.uniform(keys[n * num_streams + k], shape) for k in range(num_streams)]
    out.append(tuple(xs[0] for _ in xs) if same else tuple(xs))
  return out


def test_masked_mi_loss_identical_vs_independent_streams_and_bf16():
  # C=1 and zero-init biases: each projection is a scale, which per-image min–max removes, so identical
  # streams give identical masked maps → the self-NMI (≈0.7); independent streams give ≈0.
  mi = _jitted(losses.MaskedMILoss(1, 1, ((0, 1),), rngs=nnx.Rngs(0)))
  same_s = _stages(1, 2, (2, 32, 32, 1), 0, same=True)
  same = mi(same_s)
  indep = mi(_stages(1, 2, (2, 32, 32, 1), 0))
  assert same.shape == () and same.dtype == jnp.float32
  assert 0.6 < float(same) <= 1.
  assert 0. <= float(indep) < 0.1
  # bf16 inputs: float32 result close to the float32-input one (bf16 rounding moves values across bins a little).
  bf16 = mi([tuple(x.astype(jnp.bfloat16) for x in same_s[0])])
  assert bf16.dtype == jnp.float32 and float(bf16) == pytest.approx(float(same), abs=0.05)


def test_masked_mi_loss_grad_hdr_pairs_bf16_under_jit():
  """Gradients reach every mask conv, every 1×1 projection and S itself, through split/merge + jit + grad."""
  pairs = losses.mi_pairs('reference', 3, 1)
  mi = losses.MaskedMILoss(4, 2, pairs, num_bins=16, max_samples=200, rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(mi, nnx.Param)
  # Streams correlated with the reference so the loss is far from its floor; stage 1 in bf16.
  base, n0, n2 = (_uniform(seed, (2, 2, 24, 24, 4)) for seed in (3, 4, 5))
  S = [(base[n] + 0.3 * n0[n], base[n], base[n] + 0.3 * n2[n]) for n in range(2)]
  S[1] = tuple(x.astype(jnp.bfloat16) for x in S[1])

  @jax.jit
  def loss_fn(params, S):
    return nnx.merge(graphdef, params)(S)

  value, (g_params, g_S) = jax.value_and_grad(loss_fn, argnums=(0, 1))(params, S)
  assert value.dtype == jnp.float32 and 0.1 < float(value) <= 2 * len(pairs)
  flat = {'/'.join(map(str, k)): v for k, v in nnx.to_flat_state(g_params)}
  for name, g in flat.items():
    assert np.isfinite(np.asarray(g)).all(), name

  def norm(prefix):
    return sum(float(jnp.linalg.norm(g)) for k, g in flat.items() if k.startswith(prefix) and k.endswith('kernel'))
  for n in range(2):
    for layer in range(3):
      assert norm(f'mask/{n}/convs/{layer}/') > 0., (n, layer)
    for k in range(3):
      assert norm(f'proj/{3 * n + k}/') > 0., (n, k)
  for n, stage in enumerate(g_S):
    for k, g in enumerate(stage):
      assert g.dtype == S[n][k].dtype
      g = np.asarray(g, np.float32)
      assert np.isfinite(g).all() and np.abs(g).sum() > 0., (n, k)


def test_subsampling_bounds_pixels_and_keeps_the_estimate():
  x = _uniform(0, (1, 64, 48, 1))
  for cap in (100, 1000, 3000):
    assert losses._subsample(x, cap).shape[1] <= cap
  assert losses._subsample(x, None).shape == (1, 64 * 48)
  y = jnp.clip(x + 0.3 * _uniform(1, x.shape), 0., 1.)
  full = losses.normalized_mutual_information(losses._subsample(x, None), losses._subsample(y, None))
  sub = losses.normalized_mutual_information(losses._subsample(x, 1000), losses._subsample(y, 1000))
  assert float(sub[0]) == pytest.approx(float(full[0]), abs=0.05)


def test_masked_mi_loss_input_errors():
  mi = losses.MaskedMILoss(4, 2, ((0, 1),), rngs=nnx.Rngs(0))
  good = _stages(2, 2, (1, 8, 8, 4), 0)
  with pytest.raises(ValueError, match='must be a list of 2 stages, got 1'):
    mi(good[:1])
  with pytest.raises(ValueError, match='stage 1 must hold 2 streams, got 3'):
    mi([good[0], good[1] + (good[1][0],)])
  with pytest.raises(ValueError, match=r'S\[0\]\[1\] shape \(1, 8, 6, 4\) != S\[0\]\[0\] shape'):
    mi([(good[0][0], good[0][1][:, :, :6]), good[1]])
  with pytest.raises(ValueError, match=r'S\[1\]\[0\] must be \(N, H, W, 4\)'):
    mi([good[0], (good[1][0][..., :3], good[1][1][..., :3])])
  with pytest.raises(ValueError, match=r'bad pair \(0, 2\) for num_streams=2'):
    losses.MaskedMILoss(4, 2, ((0, 2),), num_streams=2, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match='pairs is empty'):
    losses.MaskedMILoss(4, 2, (), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match='bandwidth must be > 0'):
    losses.MaskedMILoss(4, 2, ((0, 1),), bandwidth=0., rngs=nnx.Rngs(0))
  masks = mi.gradient_masks(good)  # the well-formed input passes
  assert len(masks) == 2 and all(len(m) == 1 and m[0].shape == (1, 8, 8, 1) for m in masks)
  assert all(float(m[0].min()) > 0. and float(m[0].max()) < 1. for m in masks)
