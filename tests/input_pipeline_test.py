"""Train/eval input pipelines on the built-in demo data: shapes, alignment, augmentation, task encodings, resume."""
import ml_collections
import numpy as np
import pytest

from data_pipelines import common
from data_pipelines import input_pipeline
from data_pipelines import loader
from data_pipelines import transforms


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('tfds'))


def make_config(task, data_dir, **overrides):
  config = ml_collections.ConfigDict()
  config.task, config.seed, config.batch_size, config.patch_size = task, 0, 4, 32
  config.data = ml_collections.ConfigDict(dict(
      train_dataset=f'mgdn_demo/{task}', train_split='train', eval_datasets=(f'mgdn_demo/{task}:test',),
      manual_dir=None, data_dir=data_dir, gdsr_scale=4, num_workers=0, augment=True))
  for key, value in overrides.items():
    target = config.data if key in config.data else config
    target[key] = value
  return config


def take(it, n):
  return [next(it) for _ in range(n)]


def assert_batches_equal(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])


@pytest.mark.parametrize('task,chans,out,depth_range', [
    ('mef', (3, 3), 3, False), ('mff', (3, 3), 3, False), ('hdr', (6, 6, 6), 3, False), ('gdsr', (3, 1), 1, True)])
def test_train_and_eval_batches(data_dir, task, chans, out, depth_range):
  config = make_config(task, data_dir)
  batch = next(input_pipeline.create_train_iter(config))
  want = {f'stream_{k}' for k in range(len(chans))} | {'target'}
  assert set(batch) == want
  for k, c in enumerate(chans):
    assert batch[f'stream_{k}'].shape == (4, 32, 32, c) and batch[f'stream_{k}'].dtype == np.float32
  assert batch['target'].shape == (4, 32, 32, out)
  examples = list(input_pipeline.create_eval_iter(config, f'mgdn_demo/{task}:test'))
  assert len(examples) == 2
  for ex in examples:
    assert ex['stream_0'].shape[:3] == (1, 144, 192) and ex['name'].shape == (1,)
    assert ('depth_min' in ex) == depth_range
    if depth_range:
      assert ex['depth_min'].shape == (1,) and ex['depth_max'][0] > ex['depth_min'][0]


def test_crop_is_aligned_across_streams_and_target():
  rng = np.random.default_rng(0)
  base = rng.integers(0, 200, size=(40, 50, 3), dtype=np.uint8)
  example = {'image_0': base, 'image_1': base + 10, 'image_2': base + 20, 'target': base + 50, 'name': b'x'}
  transform = input_pipeline.TrainTransform('mef', 16, augment=True, gdsr_scale=4)
  for seed in range(20):
    out = transform.random_map(example, np.random.default_rng(seed))
    s0 = np.round(out['stream_0'] * 255)
    for k in (1, 2):
      np.testing.assert_array_equal(np.round(out[f'stream_{k}'] * 255) - s0, 10 * k)
    np.testing.assert_array_equal(np.round(out['target'] * 255) - s0, 50)
    # The patch is a dihedral transform of some 16×16 window of the source.
    windows = np.lib.stride_tricks.sliding_window_view(base, (16, 16), axis=(0, 1))
    found = any(np.array_equal(transforms.augment(windows[y, x].transpose(1, 2, 0), m), s0)
                for m in range(8) for y in range(25) for x in range(35))
    assert found


def test_augment_modes_are_the_eight_dihedral_transforms():
  img = np.arange(12).reshape(3, 4)
  outs = [transforms.augment(img, m) for m in range(8)]
  assert len({o.tobytes() + bytes(o.shape) for o in outs}) == 8
  np.testing.assert_array_equal(outs[4], img[:, ::-1])
  np.testing.assert_array_equal(outs[6], img[::-1])
  np.testing.assert_array_equal(outs[2], img[::-1, ::-1])
  # GDSR only flips: the transposing modes never occur, and all four flip modes do.
  example = {'rgb': np.zeros((20, 30, 3), np.uint8), 'depth': np.arange(600, dtype=np.float32).reshape(20, 30)}
  transform = input_pipeline.TrainTransform('gdsr', 8, augment=True, gdsr_scale=4)
  seen = set()
  for seed in range(64):
    t = transform.random_map(example, np.random.default_rng(seed))['target'][..., 0]
    d = np.diff(t, axis=1)[0, 0], np.diff(t, axis=0)[0, 0]
    seen.add((np.sign(d[0]), np.sign(d[1])))
  assert seen == {(1, 1), (-1, 1), (1, -1), (-1, -1)}  # row/column direction flips, never a transpose


def test_hdr_stream_values():
  ldr = np.array([[[65535, 32768, 0]]], np.uint16)
  out = transforms.hdr_stream(ldr, ev=2.0)
  lin = np.array([1.0, 32768 / 65535, 0.0], np.float32)
  np.testing.assert_allclose(out[0, 0, :3], lin, rtol=1e-6)
  np.testing.assert_allclose(out[0, 0, 3:], lin**2.2 / 4.0, rtol=1e-5)
  example = {f'image_{k}': np.full((8, 8, 3), 65535, np.uint16) for k in range(3)}
  example.update(exposures=np.array([0.0, 3.0, 6.0], np.float32), target=np.ones((8, 8, 3), np.float32))
  out = input_pipeline.encode_example(example, 'hdr', 4)
  for k, ev in enumerate((0, 3, 6)):
    np.testing.assert_allclose(out[f'stream_{k}'][0, 0], [1, 1, 1] + [2.0**-ev] * 3, rtol=1e-6)


def test_torch_bicubic_known_values():
  up = transforms.bicubic_up(np.array([[0.0, 1.0]], np.float32), (1, 4))
  # torch.nn.functional.interpolate(..., size=4, mode='bicubic', align_corners=False): no clamp, hence < 0 and > 1.
  np.testing.assert_allclose(up[0], [-0.10546875, 0.2265625, 0.7734375, 1.10546875], atol=1e-7)
  np.testing.assert_allclose(transforms.bicubic_up(np.full((3, 5), 0.25, np.float32), (12, 20)), 0.25, atol=1e-7)


def test_gdsr_degradation_on_known_depth():
  yy, xx = np.mgrid[0:32, 0:48].astype(np.float32)
  depth = 2.0 + 0.05 * xx + 0.02 * yy  # a plane in metres
  out = transforms.gdsr_example(np.zeros((32, 48, 3), np.uint8), depth, scale=4)
  np.testing.assert_allclose(out['depth_min'], 2.0)
  np.testing.assert_allclose(out['depth_max'], 2 + 0.05 * 47 + 0.02 * 31, rtol=1e-6)
  target = out['target'][..., 0]
  assert target.min() == 0 and target.max() == 1
  # Bicubic down/up nearly reproduces a plane away from the borders (Keys a = −0.75 is not exact for linear ramps).
  np.testing.assert_allclose(out['stream_1'][8:-8, 8:-8, 0], target[8:-8, 8:-8], atol=1e-2)
  assert out['stream_1'].shape == (32, 48, 1)
  np.testing.assert_allclose(out['stream_0'][0, 0], -transforms.IMAGENET_MEAN / transforms.IMAGENET_STD, rtol=1e-6)
  # A constant map does not divide by zero.
  flat = transforms.gdsr_example(np.zeros((16, 16, 3), np.uint8), np.full((16, 16), 3.0, np.float32), scale=4)
  assert np.all(flat['target'] == 0) and np.all(np.isfinite(flat['stream_1']))


def test_gdsr_matches_golden_protocol(shared_dir):
  depth = np.load(shared_dir / 'data/nyu_gdsr/Depth/1444.npy')
  d_n, _, _ = transforms.minmax_normalize(depth)
  golden = shared_dir / 'reference/metrics_golden/gdsr'
  lr = transforms.pil_bicubic_down(d_n, 4)
  np.testing.assert_array_equal(lr, np.load(golden / 'nyu1444_x4_lr.npy'))
  up = transforms.bicubic_up(lr, d_n.shape)
  np.testing.assert_allclose(up, np.load(golden / 'nyu1444_x4_bicubic_up.npz')['up'], atol=1e-6)


def test_deterministic_given_seed(data_dir):
  first = take(input_pipeline.create_train_iter(make_config('mef', data_dir)), 3)
  again = take(input_pipeline.create_train_iter(make_config('mef', data_dir)), 3)
  assert_batches_equal(first, again)
  other = take(input_pipeline.create_train_iter(make_config('mef', data_dir, seed=1)), 3)
  assert not np.array_equal(first[0]['stream_0'], other[0]['stream_0'])


def test_resume_from_state_gives_the_same_batches(data_dir):
  config = make_config('hdr', data_dir)
  it = input_pipeline.create_train_iter(config)
  take(it, 3)  # 12 examples: past the end of the 6-example first epoch
  state = it.get_state()
  expected = take(it, 4)
  resumed = input_pipeline.create_train_iter(config)
  resumed.set_state(state)
  assert_batches_equal(take(resumed, 4), expected)


def test_resume_through_orbax(data_dir, tmp_path):
  import grain
  import orbax.checkpoint as ocp
  config = make_config('mff', data_dir)
  it = input_pipeline.create_train_iter(config)
  take(it, 2)
  with ocp.CheckpointManager(tmp_path / 'ckpt') as manager:
    manager.save(2, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(it)))
    manager.wait_until_finished()
    expected = take(it, 3)
    resumed = input_pipeline.create_train_iter(config)
    manager.restore(2, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(resumed)))
  assert_batches_equal(take(resumed, 3), expected)


def test_host_sharding(data_dir):
  config = make_config('gdsr', data_dir)
  batches = [next(input_pipeline.create_train_iter(config, process_index=p, process_count=2)) for p in range(2)]
  assert all(b['stream_0'].shape[0] == 2 for b in batches)
  assert not np.array_equal(batches[0]['target'], batches[1]['target'])
  with pytest.raises(ValueError, match='not divisible by process_count 3'):
    input_pipeline.create_train_iter(config, process_index=0, process_count=3)


def test_workers_give_the_same_batches(data_dir):
  from absl import flags
  flags.FLAGS.mark_as_parsed()  # grain workers read absl flags (main.py runs under app.run)
  serial = take(input_pipeline.create_train_iter(make_config('mef', data_dir)), 2)
  parallel = take(input_pipeline.create_train_iter(make_config('mef', data_dir, num_workers=1)), 2)
  assert_batches_equal(serial, parallel)


def test_missing_dataset_is_one_line(tmp_path):
  config = make_config('mff', str(tmp_path), train_dataset='lytro')
  with pytest.raises(common.DataError) as e:
    input_pipeline.create_train_iter(config)
  msg = str(e.value)
  assert '\n' not in msg and 'dataset lytro is not prepared' in msg and 'data_pipelines.prepare' in msg
  with pytest.raises(ValueError, match='expected "name'):
    loader.split_name('mefb')
  with pytest.raises(common.DataError, match=r"unknown config \(choose one of \['gdsr', 'hdr', 'mef', 'mff'\]\)"):
    loader.data_source('mgdn_demo/xyz', 'train', data_dir=tmp_path)
  with pytest.raises(common.DataError, match="unknown dataset 'nope'"):
    loader.data_source('nope', 'train', data_dir=tmp_path)


def test_pipelines_prepare_from_manual_dir(shared_dir, tmp_path):
  """config.data.manual_dir holding nyu_gdsr/: the pipelines prepare it; eval follows the GDSR protocol exactly."""
  config = make_config('gdsr', str(tmp_path), train_dataset='nyu_gdsr', train_split='test',
                       manual_dir=str(shared_dir / 'data'), patch_size=64)
  batch = next(input_pipeline.create_train_iter(config))
  assert batch['stream_1'].shape == (4, 64, 64, 1)
  examples = {str(ex['name'][0]): ex for ex in input_pipeline.create_eval_iter(config, 'nyu_gdsr:test')}
  assert len(examples) == 8
  ex = examples['1444']
  golden = np.load(shared_dir / 'reference/metrics_golden/gdsr/nyu1444_x4_bicubic_up.npz')['up']
  np.testing.assert_allclose(ex['stream_1'][0, ..., 0], golden, atol=1e-6)
  depth = np.load(shared_dir / 'data/nyu_gdsr/Depth/1444.npy')
  assert ex['depth_min'][0] == depth.min() and ex['depth_max'][0] == depth.max()
  assert ex['stream_0'].shape == (1, 480, 640, 3) and ex['target'].shape == (1, 480, 640, 1)
