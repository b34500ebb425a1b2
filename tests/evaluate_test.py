"""The evaluation tool: --fused_dir / --sources_dir scoring, report files, one-line errors, checkpoint evaluation."""
import json
import pathlib
import shutil

import numpy as np
from PIL import Image
import pytest

from mgdn_jax import evaluate
from mgdn_jax import metrics
from mgdn_jax.evaluation import Comparisons
from mgdn_jax.metrics import baselines

GOLDEN = json.loads((pathlib.Path(__file__).parent / 'testdata' / 'metrics_golden' / 'golden.json').read_text())
TOL = 1e-4



def _error(argv) -> str:
  """The one-line error that ends evaluate.main(argv) (mgdn_jax.cli.fail)."""
  with pytest.raises(SystemExit) as e:
    evaluate.main(argv)
  return str(e.value)

def _scene(rng, h=48, w=56):
  """A smooth random scene and two degraded sources (darker / brighter halves blurred differently)."""
  yy, xx = np.mgrid[0:h, 0:w]
  base = 128 + 60 * np.sin(xx / 5.0 + rng.random() * 3)[..., None] * np.cos(yy / 7.0)[..., None]
  base = np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255)
  a = np.clip(base * 0.6, 0, 255).astype(np.uint8)
  b = np.clip(base * 1.3, 0, 255).astype(np.uint8)
  return a, b, base.astype(np.uint8)


def _write_sources(root: pathlib.Path, names, layout='AB', seed=0):
  rng = np.random.default_rng(seed)
  scenes = {}
  for n in names:
    a, b, f = _scene(rng)
    scenes[n] = (a, b, f)
    if layout == 'AB':
      for d, img in (('A', a), ('B', b)):
        (root / d).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / d / f'{n}.png')
    else:  # MEFB: one folder per scene, case quirks in the suffix
      (root / n).mkdir(parents=True, exist_ok=True)
      Image.fromarray(a).save(root / n / f'{n}_a.png')
      Image.fromarray(b).save(root / n / f'{n}_B.png')
  return scenes


def _write_fused(folder: pathlib.Path, scenes):
  folder.mkdir(parents=True, exist_ok=True)
  for n, (_, _, f) in scenes.items():
    Image.fromarray(f).save(folder / f'{n}.png')


def test_fused_dir_generated_mff(tmp_path, capsys):
  scenes = _write_sources(tmp_path / 'src', ['s1', 's2', 's3'])
  _write_fused(tmp_path / 'fused', scenes)
  Image.fromarray(scenes['s1'][2]).save(tmp_path / 'fused' / 'unrelated.png')
  out = tmp_path / 'out'
  rc = evaluate.main(['--task=mff', f'--fused_dir=mine={tmp_path / "fused"}', f'--sources_dir={tmp_path / "src"}',
                      f'--output_dir={out}', '--baselines=average'])
  assert rc == 0
  stdout = capsys.readouterr().out
  assert '| mine | rgb | 3 |' in stdout and '| average | gray | 3 |' in stdout
  doc = json.loads((out / 'results.json').read_text())
  assert doc['task'] == 'mff' and doc['dataset'] == 'src'
  rows = {(r['method'], r['mode']): r for r in doc['results']}
  assert set(rows) == {('mine', 'rgb'), ('mine', 'gray'), ('average', 'rgb'), ('average', 'gray')}
  for n, (a, b, f) in scenes.items():
    for mode in ('rgb', 'gray'):
      want = metrics.evaluate_fusion([a, b], f, 'mff', gray=mode == 'gray')
      assert rows['mine', mode]['per_image'][n] == pytest.approx(want, abs=1e-12)
  means = rows['mine', 'rgb']['mean']
  assert means['Qabf'] == pytest.approx(np.mean([v['Qabf'] for v in rows['mine', 'rgb']['per_image'].values()]))
  csv_lines = (out / 'results.csv').read_text().splitlines()
  assert csv_lines[0] == 'method,mode,name,Qabf,EN,PSNR_mefb,PSNR,SSIM'
  assert len(csv_lines) == 1 + 4 * 3 + 4 and csv_lines[-1].startswith('average,gray,MEAN,')
  assert (out / 'table.md').read_text().startswith('**MFF — src**')
  # Baseline outputs are saved; the user's own fused images are not copied.
  assert sorted(p.name for p in (out / 'average').iterdir()) == ['s1.png', 's2.png', 's3.png']
  assert not (out / 'mine').exists()


def test_fused_dir_mefb_layout_mef(tmp_path):
  scenes = _write_sources(tmp_path / 'src', ['Arno', 'garage'], layout='mefb', seed=1)
  _write_fused(tmp_path / 'fused', scenes)
  summary = evaluate.evaluate_fused_dirs('mef', comparisons=Comparisons((str(tmp_path / 'fused'),)),
                                         sources_dir=tmp_path / 'src', output_dir=tmp_path / 'out', progress=False)
  assert list(summary) == ['fused/rgb']
  a, b, f = scenes['garage']
  doc = json.loads((tmp_path / 'out' / 'results.json').read_text())
  got = doc['results'][0]['per_image']['garage']
  assert got == pytest.approx(metrics.evaluate_fusion([a, b], f, 'mef'), abs=1e-12)
  assert summary['fused/rgb']['images'] == 2


def test_mefb_output_folder_pattern(tmp_path, capsys):
  """MEFB keeps every method's result in one folder as <scene>_<method>.<ext>."""
  scenes = _write_sources(tmp_path / 'src', ['507', 'Arno'], layout='mefb', seed=2)
  out = tmp_path / 'fused_images'
  out.mkdir()
  for n, (a, b, f) in scenes.items():
    Image.fromarray(f).save(out / f'{n}_GOOD.png')
    Image.fromarray(a).save(out / f'{n}_DARK.jpg')
  both = Comparisons((f'GOOD={out}', f'DARK={out}'), '{scene}_{method}')
  summary = evaluate.evaluate_fused_dirs('mef', comparisons=both, sources_dir=tmp_path / 'src', progress=False)
  assert set(summary) == {'GOOD/rgb', 'DARK/rgb'}
  a, b, f = scenes['Arno']
  assert summary['GOOD/rgb']['CE'] == pytest.approx(np.mean([
      metrics.evaluate_fusion([x[0], x[1]], x[2], 'mef')['CE'] for x in scenes.values()]), abs=1e-12)
  assert _error(['--task=mef', f'--sources_dir={tmp_path / "src"}', f'--fused_dir=U2F={out}',
                 '--fused_pattern={scene}_{method}']) == (
      f'evaluate: error: scene 507: no fused image 507_U2F.<png|jpg|...> in {out}')
  with pytest.raises(ValueError, match=r"must contain \{scene\}"):
    evaluate.evaluate_fused_dirs('mef', comparisons=Comparisons((str(out),), '{method}'), sources_dir=tmp_path / 'src')


def test_missing_and_mismatched_fused_images(tmp_path, capsys):
  scenes = _write_sources(tmp_path / 'src', ['s1', 's2'])
  _write_fused(tmp_path / 'fused', scenes)
  (tmp_path / 'fused' / 's2.png').unlink()
  args = ['--task=mff', f'--fused_dir={tmp_path / "fused"}', f'--sources_dir={tmp_path / "src"}',
          f'--output_dir={tmp_path / "out"}']
  assert _error(args) == f'evaluate: error: scene s2: no fused image s2.<png|jpg|...> in {tmp_path / "fused"}'
  Image.fromarray(scenes['s1'][2][:, :-2]).save(tmp_path / 'fused' / 's2.png')
  Image.fromarray(scenes['s1'][2]).save(tmp_path / 'fused' / 's1.jpg')
  assert 'scene s1: several fused images match' in _error(args)
  (tmp_path / 'fused' / 's1.jpg').unlink()
  err = _error(args)
  assert err.startswith('evaluate: error: scene s2: fused image ') and err.endswith('s2.png is 54x48 but the sources are 56x48')


def test_argument_and_layout_errors(tmp_path, capsys):
  scenes = _write_sources(tmp_path / 'src', ['s1', 's2'])
  _write_fused(tmp_path / 'fused', scenes)
  (tmp_path / 'src' / 'B' / 's2.png').unlink()
  assert 'A/ has 2 images but B/ has 1' in _error(['--task=mff', f'--fused_dir={tmp_path / "fused"}',
                                                   f'--sources_dir={tmp_path / "src"}'])
  assert 'exactly one of --dataset and --sources_dir' in _error(['--task=mff', f'--fused_dir={tmp_path / "fused"}'])
  assert 'give --checkpoint, --fused_dir or --baselines' in _error(['--task=mff', f'--sources_dir={tmp_path / "src"}'])
  assert '--task is required' in _error([f'--fused_dir={tmp_path / "fused"}', f'--sources_dir={tmp_path / "src"}'])
  with pytest.raises(ValueError, match="unknown baseline 'median'"):
    evaluate.evaluate_fused_dirs('mff', comparisons=Comparisons(baselines=('median',)), sources_dir=tmp_path / 'src')
  (tmp_path / 'src' / 'B' / 's2.png').write_bytes((tmp_path / 'src' / 'A' / 's2.png').read_bytes())
  with pytest.raises(ValueError, match=r"unknown modes \['grey'\]"):
    evaluate.evaluate_fused_dirs('mff', comparisons=Comparisons((str(tmp_path / 'fused'),)),
                                 sources_dir=tmp_path / 'src', overrides={'modes': ('grey',)})
  with pytest.raises(ValueError, match="not 'hdr'"):
    evaluate.evaluate_fused_dirs('hdr', comparisons=Comparisons((str(tmp_path / 'fused'),)),
                                 sources_dir=tmp_path / 'src')


def test_mertens_baseline_is_skipped_without_cv2(tmp_path):
  _write_sources(tmp_path / 'src', ['s1'])
  summary = evaluate.evaluate_fused_dirs('mef', comparisons=Comparisons(baselines=('average', 'mertens')),
                                         sources_dir=tmp_path / 'src', progress=False)
  expected = {'average/rgb'} | ({'mertens/rgb'} if baselines.import_cv2() else set())
  assert set(summary) == expected


def test_jpeg_rows(tmp_path):
  scenes = _write_sources(tmp_path / 'src', ['s1'])
  summary = evaluate.evaluate_fused_dirs('mff', comparisons=Comparisons(baselines=('average',), jpeg_quality=95),
                                         sources_dir=tmp_path / 'src', overrides={'modes': ('gray',)},
                                         progress=False)
  assert set(summary) == {'average/gray', 'average+jpeg95/gray'}
  a, b, _ = scenes['s1']
  jpeg = baselines.jpeg_roundtrip(baselines.baseline('average', [a, b]), 95)
  want = metrics.evaluate_fusion([a, b], jpeg, 'mff', gray=True)
  got = summary['average+jpeg95/gray']
  assert {k: got[k] for k in want} == pytest.approx(want, abs=1e-12)
  with pytest.raises(ValueError, match='jpeg_quality must be in 1..100, got 0'):
    evaluate.evaluate_fused_dirs('mff', comparisons=Comparisons(baselines=('average',), jpeg_quality=0),
                                 sources_dir=tmp_path / 'src')


@pytest.mark.parametrize('mode', ['rgb', 'gray'])
def test_fused_dir_on_real_lytro_pairs_matches_golden(shared_dir, tmp_path, mode):
  """Sources straight from shared/data/lytro, fused = the golden focus-selection images: Octave's values."""
  golden_dir = shared_dir / 'reference' / 'metrics_golden' / 'lytro_focus_select'
  fused = tmp_path / 'fused'
  fused.mkdir()
  for i in (1, 2):
    shutil.copy(golden_dir / f'lytro_0{i}_F_rgb.png', fused / f'lytro_0{i}.png')
  summary = evaluate.evaluate_fused_dirs('mff', comparisons=Comparisons((f'focus={fused}',)),
                                         sources_dir=shared_dir / 'data' / 'lytro', output_dir=tmp_path / 'out',
                                         overrides={'modes': (mode,), 'max_examples': 2}, progress=False)
  doc = json.loads((tmp_path / 'out' / 'results.json').read_text())
  for i in (1, 2):
    want = GOLDEN['cases'][f'lytro_0{i}_focus_select'][mode]
    got = doc['results'][0]['per_image'][f'lytro_0{i}']
    assert abs(got['Qabf'] - want['Qabf']) <= TOL
    assert abs(got['EN'] - want['EN']) <= TOL
    assert abs(got['PSNR_mefb'] - want['PSNR_MEFB']) <= TOL
    assert abs(got['SSIM'] - want['SSIM_VIFB_sum'] / 2) <= TOL
  assert summary[f'focus/{mode}']['images'] == 2


def test_fused_dir_on_real_mefb_pair_matches_golden(shared_dir, tmp_path):
  fused = tmp_path / 'fused'
  fused.mkdir()
  shutil.copy(shared_dir / 'reference' / 'metrics_golden' / 'mefb_507_mertens' / 'F_rgb.png', fused / '507.png')
  summary = evaluate.evaluate_fused_dirs('mef', comparisons=Comparisons((f'mertens={fused}',)),
                                         sources_dir=shared_dir / 'data' / 'mefb', overrides={'max_examples': 1},
                                         progress=False)   # 507 sorts first
  want = GOLDEN['cases']['mefb_507_mertens']['rgb']
  got = summary['mertens/rgb']
  for key in ('CE', 'MEF_SSIM', 'Qcb', 'VIF'):
    assert abs(got[key] - want[key]) <= TOL, key


@pytest.fixture(scope='module')
def tiny_mff_checkpoint(tmp_path_factory):
  configs = pytest.importorskip('configs.mff')
  model_lib = pytest.importorskip('mgdn_jax.model')
  checkpoint = pytest.importorskip('mgdn_jax.checkpoint')
  pytest.importorskip('mgdn_jax.inference')
  config = configs.get_config('tiny')
  config.no_reference_metrics = True  # the evaluation's protocol follows the checkpoint's config: all metrics
  model = model_lib.create_model(config.model, seed=0)
  directory = tmp_path_factory.mktemp('ckpt') / 'exported'
  checkpoint.save_model(str(directory), model, config)
  return directory, model, config


def test_checkpoint_on_demo_dataset(tiny_mff_checkpoint, tmp_path, capsys):
  """End to end: exported tiny model -> mgdn_demo/mff test set (self-preparing) -> metrics, images, report;
  the same run also scores a fused folder (the first scene only) and the average baseline."""
  directory, model, config = tiny_mff_checkpoint
  data_dir, out = tmp_path / 'tfds', tmp_path / 'out'
  rc = evaluate.main([f'--checkpoint={directory}', '--dataset=mgdn_demo/mff', f'--data_dir={data_dir}',
                      f'--output_dir={out}', '--max_examples=1', '--baselines=average', '--modes=rgb'])
  assert rc == 0, capsys.readouterr().err
  doc = json.loads((out / 'results.json').read_text())
  assert doc['checkpoint'] == str(directory) and doc['padding'] == 'official'
  rows = {r['method']: r for r in doc['results']}
  assert set(rows) == {'MGDN', 'average'}
  (scene, values), = rows['MGDN']['per_image'].items()
  assert set(values) == {'Qabf', 'EN', 'PSNR_mefb', 'PSNR', 'SSIM', 'PSNR_gt', 'SSIM_gt'}
  saved = np.array(Image.open(out / 'MGDN' / f'{scene}.png'))
  assert saved.dtype == np.uint8 and saved.ndim == 3
  # The API main.py --mode=eval calls, with an already loaded model; scores the saved output as a fused folder.
  summary = evaluate.evaluate_checkpoint(model=model, config=config, dataset='mgdn_demo/mff:test',
                                         data_dir=data_dir, comparisons=Comparisons((f'again={out / "MGDN"}',)),
                                         overrides={'modes': ('rgb',), 'max_examples': 1}, progress=False)
  means = summary['mgdn_demo/mff:test']
  assert means['again/rgb']['Qabf'] == pytest.approx(means['MGDN/rgb']['Qabf'], abs=1e-12)
  assert means['MGDN/rgb']['Qabf'] == pytest.approx(values['Qabf'], abs=1e-12)


@pytest.fixture
def fake_fuse(monkeypatch):
  """Replaces the network by a cheap function of the streams and records the inference settings."""
  inference = pytest.importorskip('mgdn_jax.inference')
  calls = []

  def fuse(model, images, **kwargs):
    calls.append(kwargs)
    return model(images)

  monkeypatch.setattr(inference, 'fuse', fuse)
  return calls


def _hdr_guess(streams):
  """A crude HDR estimate from the reference frame's linear half (stream_1 channels 3..5)."""
  return np.clip(streams[1][..., 3:6] * 0.9, 0, 1).astype(np.float32)


def _evaluate_demo(task, model, tmp_path):
  """`model` on the first mgdn_demo/<task> test scene: (results.json, its per-image values, the scene)."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  config = ml_collections.ConfigDict({'task': task, 'data': {'eval_datasets': (f'mgdn_demo/{task}:test',),
                                                             'data_dir': str(tmp_path / 'tfds')}})
  summary = evaluate.evaluate_checkpoint(model=model, config=config, output_dir=tmp_path / 'out',
                                         overrides={'max_examples': 1}, progress=False)
  assert summary[f'mgdn_demo/{task}:test']['MGDN/-']['images'] == 1
  doc = json.loads((tmp_path / 'out' / 'results.json').read_text())
  (name, got), = doc['results'][0]['per_image'].items()
  scene = next(evaluate.scenes_lib.dataset_scenes(task, f'mgdn_demo/{task}:test', config))
  assert scene.name == name
  return doc, got, scene


def test_hdr_plumbing(fake_fuse, tmp_path):
  """HDR rows from the mgdn_demo test set: the metrics of whatever the model returns, official settings."""
  _, got, scene = _evaluate_demo('hdr', _hdr_guess, tmp_path)
  assert fake_fuse[0]['tile'] == 500 and fake_fuse[0]['overlap'] == 0    # the official 500x500 tiles
  assert got == pytest.approx(metrics.hdr_metrics(_hdr_guess(scene.streams), scene.target), abs=1e-12)
  assert (tmp_path / 'out' / 'MGDN' / f'{scene.name}.png').is_file()


def test_gdsr_plumbing(fake_fuse, tmp_path):
  """GDSR: the bicubic-upsampled input depth (stream_1) as the prediction, i.e. the bicubic baseline."""
  doc, got, scene = _evaluate_demo('gdsr', lambda streams: streams[1], tmp_path)
  assert fake_fuse[0]['tile'] is None and doc['crop'] == 0                # 6 only for NYU
  want = metrics.gdsr_rmse_cm(scene.streams[1], scene.target, *scene.depth_range, crop=0)
  assert got['rmse_cm'] == pytest.approx(want, abs=1e-12) and want > 0
  saved = np.array(Image.open(tmp_path / 'out' / 'MGDN' / f'{scene.name}.png'))
  assert saved.dtype == np.uint16


def test_mismatched_sources_stop_before_any_output(tmp_path, capsys):
  """A pair of different sizes late in the set stops the evaluation before the first scene is scored."""
  scenes = _write_sources(tmp_path / 'src', ['s1', 's2', 's3'])
  _write_fused(tmp_path / 'fused', scenes)
  Image.fromarray(scenes['s3'][1][:-2]).save(tmp_path / 'src' / 'B' / 's3.png')
  out = tmp_path / 'out'
  err = _error(['--task=mff', f'--sources_dir={tmp_path / "src"}', f'--fused_dir=M={tmp_path / "fused"}',
                f'--output_dir={out}'])
  assert err.startswith('evaluate: error: scene s3: s3.png is ') and ' but s3.png is ' in err
  assert not out.exists() or not any(out.rglob('*'))
