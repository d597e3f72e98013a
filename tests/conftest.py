"""Shared test configuration: hypothesis profiles and the ``device`` parameter."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# "ci" is derandomized so that a failure reproduces on every run; "dev" explores new
# examples each run. Choose with HYPOTHESIS_PROFILE; CI=1 selects "ci" by default.
settings.register_profile(
    "ci",
    max_examples=50,
    deadline=None,
    print_blob=True,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    max_examples=50,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", parent=settings.get_profile("dev"), max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

#: Every device-aware test runs once per entry; CUDA entries are skipped without a GPU.
DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available"),
        ],
    ),
]


@pytest.fixture(scope="module")
def planted():
    """Users and items in clusters, users interacting mostly within their own cluster."""
    from contract import planted_data

    return planted_data()


@pytest.fixture(scope="session", params=DEVICES)
def device(request) -> str:
    """The device a test builds its tensors on ("cpu" or "cuda")."""
    return request.param
