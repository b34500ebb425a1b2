"""Padding and tiling/stitching of mgdn_jax.inference (tiny random models)."""
import logging

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
import pytest

from mgdn_jax import checkpoint
from mgdn_jax import inference
from mgdn_jax import model as model_lib

# A several-tile result may differ from the untiled one (MGCA pools over the whole input). Measured with the
# tiny random model on 37×45 with 24 px tiles: mean 0.003, max 0.10.
TILED_MEAN_TOL, TILED_MAX_TOL = 0.01, 0.2


@pytest.fixture(scope='module')
def tiny_fusion():
  return model_lib.create_model(model_lib.model_config('tiny_fusion'), seed=0)


@pytest.fixture(scope='module')
def tiny_hdr():
  return model_lib.create_model(model_lib.model_config('tiny_hdr'), seed=1)


def _images(rng, h, w, channels):
  return [rng.random((h, w, c), dtype=np.float32) for c in channels]


class Pointwise(nnx.Module):
  """A per-pixel stand-in for MGDN: tiling must then be exact whatever the tiles and overlaps."""

  def __init__(self):
    self.num_streams, self.in_channels, self.window_size = 2, (3, 3), 4
    self.w = nnx.Param(jnp.array([0.7, -1.3], jnp.float32))

  def __call__(self, a, b, train=False, rng=None):
    return jax.nn.sigmoid(self.w[0] * a + self.w[1] * b), []


@pytest.mark.parametrize('h, w', [(16, 24), (17, 23), (5, 9)])
def test_reflect_padding_round_trip(h, w):
  x = np.random.default_rng(0).random((h, w, 3), dtype=np.float32)
  p = inference.pad_reflect(x, 4)
  assert p.shape[0] % 4 == 0 and p.shape[1] % 4 == 0 and p.shape[0] - h < 4 and p.shape[1] - w < 4
  np.testing.assert_array_equal(p[:h, :w], x)
  if p.shape[0] > h:  # mirror without repeating the edge row (numpy/torch 'reflect')
    np.testing.assert_array_equal(p[h, :w], x[h - 2])


@pytest.mark.parametrize('h, w, ph, pw', [(16, 24, 24, 32), (17, 23, 24, 24), (520, 520, 528, 528)])
def test_official_padding_always_adds_one_to_eight(h, w, ph, pw):
  x = np.random.default_rng(0).random((h, w, 3), dtype=np.float32)
  p = inference.pad_official(x)
  assert p.shape[:2] == (ph, pw)
  np.testing.assert_array_equal(p[:h, :w], x)
  np.testing.assert_array_equal(p[h, :w], x[h - 1])  # symmetric: the edge row is repeated
  np.testing.assert_array_equal(p[:h, w], x[:, w - 1])


def test_tile_grid_of_the_official_hdr_evaluation():
  assert inference.tile_starts(1000, 500, 0) == [0, 500]
  assert inference.tile_starts(1500, 500, 0) == [0, 500, 1000]
  grid = inference.tiles(1000, 1500, 500, 0)
  assert len(grid) == 6 and all(np.all(t[4] == 1) for t in grid)


@pytest.mark.parametrize('size, tile, overlap', [(37, 16, 4), (100, 30, 10), (64, 32, 0), (33, 32, 8)])
def test_blend_weights_cover_and_sum_to_one(size, tile, overlap):
  grid = inference.tiles(size, size, tile, overlap)
  total = np.zeros((size, size))
  for y, x, th, tw, wt in grid:
    assert wt.shape == (th, tw) and wt.min() > 0
    total[y:y + th, x:x + tw] += wt
  np.testing.assert_allclose(total, 1., atol=1e-6)


def test_overlap_must_be_smaller_than_tile():
  with pytest.raises(ValueError, match='overlap 8 must be smaller than the tile size 8'):
    inference.tile_starts(20, 8, 8)


@pytest.mark.parametrize('tile, overlap', [(8, 0), (12, 4), (16, 6)])
def test_tiling_is_exact_for_a_pointwise_model(tile, overlap):
  model = Pointwise()
  imgs = _images(np.random.default_rng(0), 29, 35, (3, 3))
  full = inference.fuse(model, imgs, auto=False)
  tiled = inference.fuse(model, imgs, tile=tile, overlap=overlap)
  np.testing.assert_allclose(tiled, full, atol=1e-6)


def test_reflect_padding_matches_the_models_own_padding(tiny_fusion):
  imgs = _images(np.random.default_rng(1), 21, 30, (3, 3))
  ours = inference.fuse(tiny_fusion, imgs, padding='reflect')
  models = inference.fuse(tiny_fusion, imgs, padding='none')
  assert ours.shape == (21, 30, 3) and ours.dtype == np.float32
  np.testing.assert_allclose(ours, models, atol=1e-6)


def test_one_tile_covering_the_image_equals_untiled(tiny_fusion):
  imgs = _images(np.random.default_rng(2), 37, 45, (3, 3))
  full = inference.fuse(tiny_fusion, imgs, auto=False)
  np.testing.assert_array_equal(inference.fuse(tiny_fusion, imgs, tile=48, overlap=8), full)


def test_several_tiles_stay_close_to_untiled(tiny_fusion):
  imgs = _images(np.random.default_rng(2), 37, 45, (3, 3))
  full = inference.fuse(tiny_fusion, imgs, auto=False)
  tiled = inference.fuse(tiny_fusion, imgs, tile=24, overlap=8)
  diff = np.abs(tiled - full)
  assert diff.mean() < TILED_MEAN_TOL and diff.max() < TILED_MAX_TOL, (diff.mean(), diff.max())
  assert diff.max() > 0  # MGCA is global: tiles do change the result


def test_non_overlapping_tiles_are_independent_model_calls(tiny_hdr):
  """--tile=T --overlap=0 = the official HDR loop: each tile alone through the model (which pads it), stitched."""
  rng = np.random.default_rng(3)
  imgs = _images(rng, 36, 54, (6, 6, 6))
  ours = inference.fuse(tiny_hdr, imgs, tile=18, overlap=0)
  ref = np.zeros((36, 54, 3), np.float32)
  for y in (0, 18):
    for x in (0, 18, 36):
      parts = [im[y:y + 18, x:x + 18] for im in imgs]  # the model reflect-pads 18 → 20 itself
      ref[y:y + 18, x:x + 18] = inference.fuse(tiny_hdr, parts, padding='none', auto=False)
  np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_automatic_tiling_when_memory_is_short(tiny_fusion, caplog):
  imgs = _images(np.random.default_rng(4), 40, 40, (3, 3))
  assert inference.auto_tile(tiny_fusion, 40, 40, budget=1 << 40) is None
  with caplog.at_level(logging.INFO, logger='mgdn_jax.inference'):
    out = inference.fuse(tiny_fusion, imgs, memory_budget=1)
  assert out.shape == (40, 40, 3)
  assert 'tiling with' in caplog.text
  assert inference.available_bytes() > 0


def test_fuse_rejects_bad_inputs(tiny_fusion):
  rng = np.random.default_rng(5)
  with pytest.raises(ValueError, match='takes 2 input images, got 1'):
    inference.fuse(tiny_fusion, _images(rng, 8, 8, (3,)))
  with pytest.raises(ValueError, match='differ in size: 8x8, 8x12'):
    inference.fuse(tiny_fusion, [rng.random((8, 8, 3)), rng.random((8, 12, 3))])
  with pytest.raises(ValueError, match=r'input 1 must be \(H, W, 3\)'):
    inference.fuse(tiny_fusion, _images(rng, 8, 8, (3, 1)))


def test_bfloat16_model_keeps_weights_and_stays_close(tiny_fusion, tmp_path):
  cfg = model_lib.model_config('tiny_fusion')
  checkpoint.save_model(tmp_path / 'export', tiny_fusion, ml_collections.ConfigDict({'model': cfg}))
  bf16, bf16_cfg = checkpoint.load_model(tmp_path / 'export', dtype='bfloat16')
  assert bf16_cfg.model.dtype == 'bfloat16' and bf16.dtype == jnp.bfloat16
  jax.tree.map(np.testing.assert_array_equal, checkpoint.param_dict(bf16), checkpoint.param_dict(tiny_fusion))
  imgs = _images(np.random.default_rng(6), 16, 16, (3, 3))
  diff = np.abs(inference.fuse(bf16, imgs) - inference.fuse(tiny_fusion, imgs))
  assert diff.max() < 0.05
