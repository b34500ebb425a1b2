"""The task registry: one object per task, its input encoding (shared by training, evaluation and the fuse CLI),
metrics rules and outputs."""
import pathlib

import numpy as np
import pytest

from data_pipelines import input_pipeline
from mgdn_jax import model as model_lib
from mgdn_jax import panels
from mgdn_jax import tasks


def test_registry_matches_the_model_presets():
  assert tasks.NAMES == ('mef', 'mff', 'hdr', 'gdsr')
  for name in tasks.NAMES:
    t = tasks.get(name)
    for preset in (t.preset(), t.small_preset):
      cfg = model_lib.model_config(preset, task=name)
      assert (cfg.num_streams, tuple(cfg.in_channels)) == (t.num_streams, t.in_channels), preset
  assert [tasks.GDSR.preset(s) for s in (4, 8, 16)] == ['gdsr_x4', 'gdsr_x8', 'gdsr_x16']
  with pytest.raises(ValueError, match='GDSR scale 3: must be one of'):
    tasks.GDSR.preset(3)
  with pytest.raises(ValueError, match=r"unknown task 'sr': expected one of \('mef', 'mff', 'hdr', 'gdsr'\)"):
    tasks.get('sr')


def test_best_metric():
  assert tasks.MEF.best_metric(has_target=False) == ('MEF_SSIM', 'max')
  assert tasks.MFF.best_metric(has_target=True) == ('PSNR_gt', 'max')
  assert tasks.HDR.best_metric(has_target=True) == ('psnr_mu', 'max')
  assert tasks.GDSR.best_metric(has_target=True) == ('rmse_cm', 'min')


def test_hdr_encoding():
  ldr = np.full((2, 2, 3), 0.5, np.float32)
  raw = {'image_0': ldr, 'image_1': ldr, 'image_2': ldr, 'exposures': np.array([-2., 0., 2.])}
  out = tasks.HDR.encode(raw)
  assert [out[f'stream_{k}'].shape for k in range(3)] == [(2, 2, 6)] * 3
  np.testing.assert_allclose(out['stream_0'][0, 0], [0.5] * 3 + [0.5**2.2 * 4] * 3, rtol=1e-6)
  np.testing.assert_allclose(out['stream_2'][0, 0, 3:], 0.5**2.2 / 4, rtol=1e-6)
  with pytest.raises(ValueError, match='3 HDR frames but 2 exposure values'):
    tasks.HDR.encode(dict(raw, exposures=[0., 2.]))


def test_gdsr_encoding_of_a_low_resolution_depth_and_output():
  rng = np.random.default_rng(7)
  rgb = rng.random((16, 24, 3), dtype=np.float32)
  depth_lr = rng.uniform(1., 3., (4, 6)).astype(np.float32)
  out = tasks.GDSR.encode({'rgb': rgb, 'depth': depth_lr}, 4)
  assert out['stream_0'].shape == (16, 24, 3) and out['stream_1'].shape == (16, 24, 1) and 'target' not in out
  np.testing.assert_allclose(out['stream_0'][0, 0], (rgb[0, 0] - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225],
                             rtol=1e-5)
  lo, hi = out['depth_min'], out['depth_max']
  assert (lo, hi) == (depth_lr.min(), depth_lr.max())
  np.testing.assert_allclose(tasks.GDSR.depth(np.full((16, 24, 1), 0.5, np.float32), (lo, hi)), (lo + hi) / 2,
                             rtol=1e-6)
  with pytest.raises(ValueError, match='depth 20x24 is larger than the RGB guide 16x24'):
    tasks.GDSR.encode({'rgb': rgb, 'depth': rng.random((20, 24), dtype=np.float32)}, 4)


def test_gdsr_full_size_depth_is_the_target_of_a_simulated_low_resolution_input():
  """The fuse CLI's full-size depth and the data pipelines' examples go through the same encoding."""
  rng = np.random.default_rng(3)
  rgb = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
  depth = rng.uniform(0.5, 4., (32, 48)).astype(np.float32)
  out = tasks.GDSR.encode({'rgb': rgb, 'depth': depth}, 8)
  via_pipeline = input_pipeline.encode_example({'rgb': rgb, 'depth': depth}, 'gdsr', 8)
  assert set(out) == {'stream_0', 'stream_1', 'target', 'depth_min', 'depth_max'} == set(via_pipeline)
  for k in out:
    np.testing.assert_array_equal(out[k], via_pipeline[k])
  low = tasks.GDSR.encode({'rgb': rgb, 'depth': depth}, 4)['stream_1']
  assert np.abs(low - out['stream_1']).max() > 0      # the scale sets the simulated degradation


def test_integer_images_are_scaled_like_the_official_scripts():
  u8 = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, -1)
  out = tasks.MEF.encode({'image_0': u8, 'image_1': u8, 'target': u8})
  np.testing.assert_array_equal(out['stream_0'], (u8 / 255.).astype(np.float32))
  np.testing.assert_array_equal(out['target'], (u8 / 255.).astype(np.float32))
  u16 = (u8.astype(np.uint16) * 257)
  hdr = tasks.HDR.encode({'image_0': u16, 'image_1': u16, 'image_2': u16, 'exposures': [0., 0., 0.]})
  np.testing.assert_array_equal(hdr['stream_0'][..., :3], (u16 / 65535.).astype(np.float32))


def test_training_crops_the_task_spatial_keys():
  assert tasks.GDSR.spatial_keys({'rgb': 0, 'depth': 0, 'name': 'x'}) == ['rgb', 'depth']
  assert tasks.HDR.spatial_keys({'image_1': 0, 'image_0': 0, 'exposures': 0, 'target': 0}) == [
      'image_0', 'image_1', 'target']
  assert len(tasks.GDSR.augment_modes()) == 4 and len(tasks.MFF.augment_modes()) == 8


def test_outputs_and_panels():
  assert (tasks.MEF.default_format, tasks.HDR.default_format, tasks.GDSR.default_format) == ('png', 'hdr', 'npy')
  assert [p.name for p in tasks.HDR.output_files(pathlib.Path('o/x.hdr'))] == [
      'x.hdr', 'x_tonemapped.png']
  depth = tasks.GDSR.report_image(np.array([[[0.], [1.], [2.]]], np.float32))
  assert depth.dtype == np.uint16 and depth.tolist() == [[0, 65535, 65535]]
  streams = [np.zeros((40, 50, 3), np.float32), np.ones((40, 50, 1), np.float32)]
  panel = tasks.GDSR.panel(streams, np.full((40, 50, 1), 0.5, np.float32), None)
  bar = panel.shape[0] - 40
  assert panel.dtype == np.uint8 and panel.shape == (40 + bar, 3 * 50 + 2 * panels.GAP, 3)
  # The guide is shown as a photo: ImageNet normalisation undone (0 → the mean colour).
  np.testing.assert_array_equal(panel[bar, 0], np.round(np.array([0.485, 0.456, 0.406]) * 255))
  np.testing.assert_array_equal(panel[bar:, -50:], 128)       # the output, gray
  assert (panel[:bar] < 128).any()                            # the labels
  hdr = tasks.HDR.panel([np.zeros((40, 50, 6))] * 3, np.ones((40, 50, 3)), np.ones((40, 50, 3)))
  assert hdr.shape[1] == 5 * 50 + 4 * panels.GAP
  assert tasks.HDR.roles == 'under-exposed, reference, over-exposed'
