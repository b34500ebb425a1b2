"""benchmarks/compare_official.py: how side-by-side rounds become ratios, and its argument checks (no torch needed)."""
import pytest

from benchmarks import compare_official


def _jax(ips):
  return dict(images_per_s=ips, compile_s=20., mem_mb=1857., rss_mb=3400., load='1.0/0.5/0.5')


def _official(ips):
  return dict(images_per_s=ips, rss_mb=6000., load='1.5/0.5/0.5')


def test_rounds_are_paired_in_order_and_median_taken():
  ratios, med = compare_official.paired_ratios([_jax(2.0), _jax(3.0), _jax(1.0)],
                                               [_official(1.0), _official(1.0), _official(0.5)])
  assert ratios == [2.0, 3.0, 2.0]
  assert med == 2.0


def test_one_jax_result_pairs_with_every_official_round():
  ratios, med = compare_official.paired_ratios([_jax(3.0)], [_official(1.0), _official(2.0)])
  assert ratios == [3.0, 1.5]
  assert med == pytest.approx(2.25)


def test_a_failed_side_gives_no_ratio_for_that_round():
  ratios, med = compare_official.paired_ratios([_jax(2.0), {'error': 'exit 1: boom'}],
                                               [_official(1.0), _official(1.0)])
  assert ratios == [2.0, None]
  assert med == 2.0
  assert compare_official.paired_ratios([_jax(2.0)], [{'error': 'x'}]) == ([None], None)


def test_table_prints_every_round_and_a_repeated_error_once():
  err = {'error': 'exit -6: munmap_chunk(): invalid pointer'}
  table = compare_official.train_table(
      ['mff'], ['eager', 'compile'], {'mff': [_jax(2.0), _jax(3.0)]},
      {('mff', 'eager'): [_official(1.0), _official(1.5)], ('mff', 'compile'): [err, err]})
  row = table.splitlines()[2]
  assert '2.000 / 3.000' in row and '2.00× / 2.00×' in row and '**2.00×**' in row
  assert row.count('munmap_chunk') == 4  # compile img/s, torch.compile s, kernel CPU s, official RSS: once each
  assert '1.0–1.5' in row


@pytest.mark.parametrize('flag, message', [('--tasks=mff,sr', "unknown 'sr'; known: mef, mff, hdr"),
                                           ('--modes=eager,jit', "unknown 'jit'"),
                                           ('--modes=eager_fp16', 'known: eager, compile, eager_bf16'),
                                           ('--hdr_modes=jit', "unknown 'jit'"),
                                           ('--rounds=0', 'flag --rounds=0'),
                                           ('--hdr_size=1000', 'flag --hdr_size=1000: must be HxW')])
def test_bad_arguments_are_usage_errors_naming_the_flag(capsys, flag, message):
  with pytest.raises(SystemExit) as e:
    compare_official.main(['--official_repo=/nonexistent', flag])
  err = capsys.readouterr().err
  assert e.value.code == 2 and err.startswith('compare_official: error: ') and message in err, err


@pytest.mark.parametrize('flag', ['--tasks=mff', '--modes=eager_bf16,compile_bf16'])
def test_a_repo_without_the_official_model_fails_before_any_case(flag):
  with pytest.raises(SystemExit, match='compare_official: error: .*DYKPN.py not found'):
    compare_official.main(['--official_repo=/nonexistent', flag])


def test_hdr_table_ratios_and_a_failed_jax_side_named():
  jax_hdr = dict(latency_s=20., rss_mb=4400., base_rss_mb=400., load='1.0/1.0/1.0')
  official = dict(latency_s=80., rss_mb=16400., base_rss_mb=400., load='2.0/1.0/1.0')
  row = compare_official.hdr_table(jax_hdr, {'eager': official}).splitlines()[2]
  assert '0.25×' in row and '4000 / 16000' in row
  row = compare_official.hdr_table({'error': 'killed by SIGKILL (out of memory)'}, {'eager': official})
  assert 'out of memory' in row.splitlines()[2]


def test_gpu_runs_report_device_memory_instead_of_rss():
  jax_run = dict(_jax(60.0), device_peak_mb=5925.)
  official = dict(_official(30.0), device_peak_mb=17919.)
  table = compare_official.train_table(['hdr'], ['eager_bf16'], {'hdr': [jax_run]}, {('hdr', 'eager_bf16'): [official]})
  header, _, row = table.splitlines()
  assert 'JAX device peak MB' in header and 'official device peak MB' in header and 'RSS' not in header
  assert '5925' in row and 'eager_bf16: 17919' in row and '**2.00×**' in row
  jax_hdr = dict(latency_s=2., rss_mb=4400., base_rss_mb=400., device_peak_mb=6000., load='1.0/1.0/1.0')
  off_hdr = dict(latency_s=4., rss_mb=2000., base_rss_mb=400., device_peak_mb=24000., load='1.0/1.0/1.0')
  table = compare_official.hdr_table(jax_hdr, {'eager': off_hdr})
  assert 'device peak MB JAX / official' in table and '6000 / 24000 | 0.25×' in table


def test_kernel_cpu_seconds_of_both_sides_in_one_cell():
  jax_run = dict(_jax(2.0), cpu_sys_s=3.25)
  official = dict(_official(1.0), cpu_sys_s=1.5)
  header, _, row = compare_official.train_table(['hdr'], ['eager'], {'hdr': [jax_run]},
                                                {('hdr', 'eager'): [official]}).splitlines()
  assert '| kernel CPU s/step JAX; official |' in header
  assert '| 3.2; eager: 1.5 |' in row
