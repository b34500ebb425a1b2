"""Test setup: 8 virtual CPU devices so the ('data',) mesh and sharding are really exercised."""
import os

# Must happen before JAX initialises its backends.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)

import pathlib  # noqa: E402

import pytest  # noqa: E402

TESTDATA = pathlib.Path(__file__).parent / "testdata"
SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def testdata_dir() -> pathlib.Path:
  return TESTDATA


@pytest.fixture(scope="session")
def shared_dir() -> pathlib.Path:
  """`../shared` beside the checkout; tests that need it skip when it is absent."""
  if not SHARED.is_dir():
    pytest.skip("../shared is absent")
  return SHARED
