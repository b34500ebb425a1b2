"""What the project promises about the user's files: nothing is deleted or replaced unasked, nothing half-written is
left behind, and every mistake with a file or value gets one line naming it.

Datasets (data_pipelines.prepare), fused outputs (mgdn_jax.fuse) and converted checkpoints (mgdn_jax.convert).
The pixel limit of every image reader is tested in image_io_test.py.
"""
import fcntl
import os
import pathlib
import struct
import subprocess
import sys
import threading
import zlib

import numpy as np
from PIL import Image
import pytest

from conftest import OFFICIAL_MFF_WEIGHTS, shared_file
from data_pipelines import common
from data_pipelines import loader

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _cli(*args, timeout=300):
  return subprocess.run([sys.executable, '-m', *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _one_line(run) -> str:
  """The message of a CLI that failed with one line on stderr (logging lines excepted)."""
  lines = [l for l in run.stderr.strip().splitlines() if not l.startswith(('I1', 'W1', 'WARNING', 'INFO'))]
  assert run.returncode != 0 and len(lines) == 1 and 'Traceback' not in run.stderr, run.stderr
  return lines[0]


# --------------------------------------------------------------------------------------------------- datasets


def _lytro(folder: pathlib.Path, n=2, seed=0) -> pathlib.Path:
  rng = np.random.default_rng(seed)
  for side in 'AB':
    (folder / side).mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
      Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(folder / side / f'lytro_0{i}.png')
  return folder


def _prepare_cli(manual, data_dir):
  return subprocess.Popen([sys.executable, '-m', 'data_pipelines.prepare', '--dataset=lytro',
                           f'--manual_dir={manual}', f'--data_dir={data_dir}'], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_concurrent_prepares_both_succeed_and_keep_the_dataset(tmp_path):
  manual, data_dir = _lytro(tmp_path / 'lytro'), tmp_path / 'tfds'
  runs = [_prepare_cli(manual, data_dir) for _ in range(2)]
  outs = [r.communicate(timeout=300) for r in runs]
  for run, (out, err) in zip(runs, outs):
    assert run.returncode == 0 and '(test: 2)' in out, err
  assert len(loader.prepare('lytro', manual_dir=manual, data_dir=data_dir).as_data_source('test')) == 2
  assert sorted(p.name for p in data_dir.iterdir()) == ['lytro']  # no staging folder left


def test_a_waiting_prepare_reuses_the_published_dataset(tmp_path):
  manual, data_dir = _lytro(tmp_path / 'lytro'), tmp_path / 'tfds'
  data_dir.mkdir()
  fd = os.open(data_dir, os.O_RDONLY)
  fcntl.flock(fd, fcntl.LOCK_EX)  # another preparation is under way
  try:
    run = _prepare_cli(manual, data_dir)
    err, waiting = [], threading.Event()

    def read_stderr():
      for line in run.stderr:
        err.append(line)
        if 'waiting for another process' in line:
          waiting.set()

    reader = threading.Thread(target=read_stderr)
    reader.start()
    assert waiting.wait(timeout=240), ''.join(err)
    assert not list(data_dir.iterdir()), 'the second prepare must wait, not write'
    # the first one publishes its dataset
    other = loader.prepare('lytro', manual_dir=manual, data_dir=tmp_path / 'other')
    published = pathlib.Path(other.data_dir)
    (data_dir / 'lytro').mkdir()
    os.rename(published, data_dir / 'lytro' / published.name)
    inode = (data_dir / 'lytro' / published.name / 'dataset_info.json').stat().st_ino
  finally:
    os.close(fd)
  out = run.stdout.read()
  assert run.wait(timeout=300) == 0 and '(test: 2)' in out
  reader.join()
  assert (data_dir / 'lytro' / published.name / 'dataset_info.json').stat().st_ino == inode  # reused, not rebuilt
  assert sorted(p.name for p in data_dir.iterdir()) == ['lytro']


@pytest.mark.parametrize('entry', ['prepare', 'data_source'])
def test_a_dataset_published_while_looking_is_read_from_disk(tmp_path, monkeypatch, entry):
  """Another process publishes the dataset between the making of a builder and its is_prepared() check."""
  manual, data_dir = _lytro(tmp_path / 'lytro'), tmp_path / 'tfds'
  published = pathlib.Path(loader.prepare('lytro', manual_dir=manual, data_dir=tmp_path / 'other').data_dir)
  make = loader._builder

  def builder_then_publish(name, root):
    builder = make(name, root)
    if not (data_dir / 'lytro').exists():
      (data_dir / 'lytro').mkdir(parents=True)
      os.rename(published, data_dir / 'lytro' / published.name)
    return builder

  monkeypatch.setattr(loader, '_builder', builder_then_publish)
  if entry == 'prepare':
    assert loader.prepare('lytro', manual_dir=manual, data_dir=data_dir).info.splits['test'].num_examples == 2
  else:
    assert len(loader.data_source('lytro', 'test', manual_dir=tmp_path, data_dir=data_dir)) == 2


def test_prepare_never_deletes_what_it_did_not_create(tmp_path):
  manual, data_dir = _lytro(tmp_path / 'lytro'), tmp_path / 'tfds'
  mine = data_dir / 'lytro' / '1.0.0' / 'notes.txt'  # a folder in the way that is not a prepared dataset
  mine.parent.mkdir(parents=True)
  mine.write_text('mine')
  with pytest.raises(common.DataError, match=r'lytro/1.0.0 exists but holds no prepared dataset'):
    loader.prepare('lytro', manual_dir=manual, data_dir=data_dir)
  assert mine.read_text() == 'mine'
  mine.unlink()
  (manual / 'B' / 'lytro_02.png').write_bytes(b'\x89PNG\r\n\x1a\n garbage')  # a failing preparation
  keep = data_dir / 'lytro' / 'keep.txt'
  keep.write_text('mine')
  with pytest.raises(common.DataError, match='lytro_02.png'):
    loader.prepare('lytro', manual_dir=manual, data_dir=data_dir)
  assert keep.read_text() == 'mine' and (data_dir / 'lytro' / '1.0.0').is_dir()
  assert sorted(p.name for p in data_dir.iterdir()) == ['lytro']


def test_prepare_applies_the_pixel_limit_from_the_header(tmp_path):
  manual = _lytro(tmp_path / 'lytro')
  ihdr = b'IHDR' + struct.pack('>IIBBBBB', 14000, 14000, 8, 2, 0, 0, 0)
  bomb = manual / 'B' / 'lytro_02.png'
  bomb.write_bytes(b'\x89PNG\r\n\x1a\n' + struct.pack('>I', 13) + ihdr + struct.pack('>I', zlib.crc32(ihdr)))
  with pytest.raises(common.DataError, match=rf'{bomb}: 14000x14000 pixels exceeds the limit'):
    loader.prepare('lytro', manual_dir=manual, data_dir=tmp_path / 'tfds')


@pytest.mark.parametrize('case', ['same_key', 'two_formats', 'sizes'])
def test_prepare_names_the_files_in_one_line(tmp_path, case):
  manual = _lytro(tmp_path / 'lytro')
  a2 = manual / 'A' / 'lytro_02.png'
  if case == 'same_key':  # lytro-02 is normalised to lytro_02
    for side in 'AB':
      Image.open(manual / side / 'lytro_02.png').save(manual / side / 'lytro-02.png')
    want = f'{manual / "A" / "lytro-02.png"} and {a2}: both give the scene name lytro_02'
  elif case == 'two_formats':
    Image.open(a2).save(manual / 'A' / 'lytro_02.jpg')
    want = f'{manual / "A" / "lytro_02.jpg"} and {a2}: two images of one name'
  else:
    Image.fromarray(np.zeros((10, 16, 3), np.uint8)).save(a2)
    want = f'streams of different sizes ({a2} 10x16, {manual / "B" / "lytro_02.png"} 12x16)'
  run = _cli('data_pipelines.prepare', '--dataset=lytro', f'--manual_dir={manual}', f'--data_dir={tmp_path / "d"}')
  assert want in _one_line(run)
  assert not (tmp_path / 'd').exists() or not list((tmp_path / 'd').iterdir())


# ------------------------------------------------------------------------------------------- converted weights

@pytest.fixture
def official():
  return shared_file(OFFICIAL_MFF_WEIGHTS)


def _convert(capsys, *argv) -> tuple[int, str]:
  """(exit status, stderr) of the convert CLI run in this process."""
  from mgdn_jax import convert  # pylint: disable=g-import-not-at-top
  try:
    convert.main([str(a) for a in argv])
  except SystemExit as e:  # a failure carries its one-line message (mgdn_jax.cli.fail)
    return (1, str(e)) if isinstance(e.code, str) else (e.code, capsys.readouterr().err)
  return 0, capsys.readouterr().err


def test_convert_never_removes_a_folder_it_did_not_create(tmp_path, capsys, official):
  users = tmp_path / 'ck.partial'  # the name the converter used to stage into (and rmtree)
  users.mkdir()
  (users / 'notes.txt').write_text('mine')
  busy = tmp_path / 'busy'
  busy.mkdir()
  (busy / 'notes.txt').write_text('mine')
  code, err = _convert(capsys, '--task=mff', f'--official={official}', f'--out={busy}')
  assert code == 1 and err.strip() == f'convert: error: --out {busy} exists and is not an empty folder'
  (tmp_path / 'ck').mkdir()  # an empty folder may be the destination
  assert _convert(capsys, '--task=mff', f'--official={official}', f'--out={tmp_path / "ck"}')[0] == 0
  assert (users / 'notes.txt').read_text() == 'mine' and (busy / 'notes.txt').read_text() == 'mine'
  assert sorted(p.name for p in tmp_path.iterdir()) == ['busy', 'ck', 'ck.partial']  # no staging folder left
  from mgdn_jax import checkpoint  # pylint: disable=g-import-not-at-top
  assert checkpoint.load_model(str(tmp_path / 'ck'))[1].model.embed_dim == 30


def _npz_without(official, tmp_path, key):
  weights = dict(np.load(official))
  del weights[key]
  np.savez(tmp_path / 'partial.npz', **weights)
  return tmp_path / 'partial.npz'


@pytest.mark.parametrize('case', ['truncated', 'bit_flip', 'text', 'no_bias_table', 'no_fc1', 'wrong_task',
                                  'no_out_folder'])
def test_convert_errors_are_one_line_naming_the_file(tmp_path, capsys, case, official):
  data = official.read_bytes()
  bad, task, out = tmp_path / f'{case}.npz', 'mff', tmp_path / 'ck'
  if case == 'truncated':
    bad.write_bytes(data[:len(data) // 2])
    want = f'convert: error: cannot read {bad}: File is not a zip file'
  elif case == 'bit_flip':
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    bad.write_bytes(bytes(flipped))
    want = f'convert: error: cannot read {bad}: Bad CRC-32'
  elif case == 'text':
    bad.write_text('hello\n')
    want = f'convert: error: cannot read {bad}: not an .npz archive'
  elif case == 'no_bias_table':
    bad = _npz_without(official, tmp_path, 'layers.0.residual_group.blocks.0.attn.relative_position_bias_table')
    want = 'state_dict has no layers.0.residual_group.blocks.0.attn.relative_position_bias_table'
  elif case == 'no_fc1':
    bad = _npz_without(official, tmp_path, 'layers.0.residual_group.blocks.0.mlp.fc1.weight')
    want = 'state_dict has no layers.0.residual_group.blocks.0.mlp.fc1.weight'
  elif case == 'wrong_task':
    bad, task = official, 'mef'
    want = "the weights have the official mff network's dimensions (embed_dim 30, depths [3, 3]), not mef's"
  else:
    bad, out = official, tmp_path / 'missing' / 'ck'
    want = f'--out {out}: folder {out.parent} does not exist or is not writable'
  code, err = _convert(capsys, f'--task={task}', f'--official={bad}', f'--out={out}')
  assert code == 1 and len(err.strip().splitlines()) == 1 and want in err, err
  assert str(bad) in err or str(out) in err
  assert not out.exists()


# ------------------------------------------------------------------------------------------------- evaluation


def test_evaluate_refuses_an_unusable_output_dir_before_computing(tmp_path, capsys):
  from mgdn_jax import evaluate  # pylint: disable=g-import-not-at-top
  blocker = tmp_path / 'report.txt'
  blocker.write_text('mine')
  with pytest.raises(SystemExit) as e:
    evaluate.main(['--task=mff', '--baselines=average', f'--sources_dir={_lytro(tmp_path / "lytro")}',
                   f'--output_dir={blocker / "sub"}'])
  assert str(e.value) == f'evaluate: error: --output_dir {blocker / "sub"}: {blocker} is a file, not a folder'
  assert blocker.read_text() == 'mine'
