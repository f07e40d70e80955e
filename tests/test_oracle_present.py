"""CI runs the PyTorch oracle: there, a missing torch is a failure, not a quiet skip.

For a user the oracle is optional (the tests that need it skip and say how
to install the CPU build). ``.ci/run`` installs torch and sets
``MINIMAL_SEG_REQUIRE_ORACLE=1``; any CI that sets ``CI=true`` (GitHub
Actions, GitLab, ...) is held to the same rule.
"""
import os

import pytest

from helpers import NO_TORCH, TORCH_CPU_INSTALL

REQUIRED = os.environ.get("MINIMAL_SEG_REQUIRE_ORACLE") == "1" or os.environ.get("CI", "").lower() == "true"
SUPPORTED = ((2, 1), (2, 14, 1))  # the torch versions the oracle tests are known to pass with


def version_tuple(text):
    return tuple(int(part) for part in text.split("+")[0].split(".")[:3] if part.isdigit())


def test_oracle_is_installed_in_ci():
    if not REQUIRED:
        pytest.skip(f"not in CI: {NO_TORCH}")
    try:
        import torch
    except ImportError:
        pytest.fail(f"CI must run the PyTorch oracle, but torch is not installed; run {TORCH_CPU_INSTALL} "
                    "(.ci/run installs torch==2.13.0+cpu)")
    low, high = SUPPORTED
    assert low <= version_tuple(torch.__version__) <= high, f"torch {torch.__version__} is outside {SUPPORTED}"


def test_version_tuple():
    assert version_tuple("2.13.0+cpu") == (2, 13, 0)
    assert version_tuple("2.14.1") == (2, 14, 1)
    assert (2, 1) <= version_tuple("2.1.0") and version_tuple("2.15.0") > (2, 14, 1)
