"""The training progress line: pace timed after the compile, ETA at that pace."""
import ml_collections

from mgdn_jax import run_log


def _config():
  return ml_collections.ConfigDict(dict(num_train_steps=1000, batch_size=4))


def test_first_step_line_says_compile_instead_of_a_pace(monkeypatch):
  clock = iter([0., 120.])  # construction; the first step ends after a 120 s compile
  monkeypatch.setattr(run_log.time, 'time', lambda: next(clock))
  progress = run_log.Progress(_config(), step=0)
  progress.compiled(1)
  assert progress.line(1, 0.5) == 'step 1/1000  loss 0.5000  (the first step, compile included)'


def test_pace_and_eta_count_from_the_end_of_the_first_step(monkeypatch):
  clock = iter([0., 120., 130.])  # 9 steps in 10 s after the compile: 0.9 steps/s, 3.6 images/s
  monkeypatch.setattr(run_log.time, 'time', lambda: next(clock))
  progress = run_log.Progress(_config(), step=0)
  progress.compiled(1)
  # 990 steps left at 0.9 steps/s = 1100 s = 18m20s.
  assert progress.line(10, 0.25) == 'step 10/1000  loss 0.2500  3.6 images/s  ETA 18m20s'


def test_eta_in_hours_when_long(monkeypatch):
  clock = iter([0., 0., 100.])  # 1 step per 100 s, 990 steps left
  monkeypatch.setattr(run_log.time, 'time', lambda: next(clock))
  progress = run_log.Progress(_config(), step=9)
  progress.compiled(9)
  assert progress.line(10, 1.0) == 'step 10/1000  loss 1.0000  0.04 images/s  ETA 27h30m'
