"""tools/training_curves.py: reads a run's carried scalars.json (as committed under runs/) and its event files, plots
one panel per tag, refuses to replace a file and names the tags it has when asked for one it lacks."""
import json

import pytest

pytest.importorskip('matplotlib', reason='training_curves needs matplotlib (the bench extra)')
from tools import training_curves  # noqa: E402  (after the skip)


def _run(tmp_path, name, scalars):
  workdir = tmp_path / name
  workdir.mkdir()
  (workdir / training_curves.SCALARS_JSON).write_text(json.dumps(scalars))
  return workdir


def test_carried_scalars_are_read_and_plotted(tmp_path, capsys):
  a = _run(tmp_path, 'a', {'eval/lytro/Qabf': [[1000, 0.5], [500, 0.3]], 'train/loss': [[50, 0.2], [100, 0.1]]})
  b = _run(tmp_path, 'b', {'train/loss': [[50, 0.3]]})
  assert training_curves.read_scalars(a)['eval/lytro/Qabf'] == [(500, 0.3), (1000, 0.5)]
  out = tmp_path / 'curves.png'
  argv = [f'--run=A={a}', f'--run=B={b}', '--metrics=eval/lytro/Qabf,train/loss', f'--out={out}']
  training_curves.main(argv)
  assert f'wrote {out}' in capsys.readouterr().out and out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  before = out.read_bytes()
  with pytest.raises(SystemExit, match='curves.png exists'):
    training_curves.main(argv)
  assert out.read_bytes() == before


def test_a_later_stage_is_drawn_from_its_start_step(tmp_path):
  a = _run(tmp_path, 'a', {'eval/lytro/Qabf': [[0, 0.5], [250, 0.6]]})
  assert training_curves.parse_run(f'S2={a}@8100') == ('S2', a, 8100)
  assert training_curves.parse_run(f'S2={a}') == ('S2', a, 0)
  assert training_curves.parse_run('x=/data/run@v2') == ('x', training_curves.pathlib.Path('/data/run@v2'), 0)
  shifted = training_curves.shifted(training_curves.read_scalars(a), 8100)
  assert shifted == {'eval/lytro/Qabf': [(8100, 0.5), (8350, 0.6)]}
  with pytest.raises(ValueError, match='expected NAME=WORKDIR'):
    training_curves.parse_run(str(a))


def test_missing_run_and_tag_are_one_line_errors(tmp_path):
  a = _run(tmp_path, 'a', {'train/loss': [[50, 0.2]]})
  with pytest.raises(SystemExit, match=r'no run has eval/x \(tags: train/loss\)'):
    training_curves.main([f'--run=A={a}', '--metrics=eval/x', f'--out={tmp_path / "c.png"}'])
  with pytest.raises(SystemExit, match='no TensorBoard event files'):
    training_curves.main([f'--run=E={tmp_path / "empty"}', '--metrics=train/loss', f'--out={tmp_path / "c.png"}'])
  assert not (tmp_path / 'c.png').exists()
