"""XLA:CPU compile options of the training step: probed, opt-out-able, and numerically the default's results."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mgdn_jax import compile_options


@pytest.fixture
def fresh_cache():
  compile_options.train_compiler_options.cache_clear()
  yield
  compile_options.train_compiler_options.cache_clear()


def test_options_compile_and_match_default_results():
  options = compile_options.train_compiler_options()
  assert options in ({}, {compile_options._OPTION: compile_options._VALUE})
  rng = np.random.default_rng(0)
  x, w = (jnp.asarray(rng.standard_normal(s), jnp.float32) for s in ((256, 64), (64, 96)))
  f = lambda x, w: jnp.sum(jax.nn.gelu(x @ w, approximate=False) * jnp.exp(-jnp.abs(x @ w)), axis=-1)
  got = jax.jit(f, compiler_options=options)(x, w)
  np.testing.assert_allclose(np.asarray(got), np.asarray(jax.jit(f)(x, w)), rtol=1e-5, atol=1e-5)


def test_env_opt_out(monkeypatch, fresh_cache):
  monkeypatch.setenv("MGDN_YNN_FUSION", "0")
  assert compile_options.train_compiler_options() == {}


def test_users_xla_flags_win(monkeypatch, fresh_cache):
  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=individual_dot")
  assert compile_options.train_compiler_options() == {}


def test_unknown_option_falls_back_to_default(monkeypatch, fresh_cache):
  monkeypatch.setattr(compile_options, "_OPTION", "xla_cpu_no_such_option_for_this_test")
  assert compile_options.train_compiler_options() == {}
