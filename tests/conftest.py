"""Shared test set-up: tests under tests/integration/ are marked `integration` automatically, and
every test runs from the repository root (paths like examples/myapp.yaml are relative to it)."""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INTEGRATION_DIR = Path(__file__).parent / "integration"
EXAMPLES = ROOT / "examples"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if INTEGRATION_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def _run_from_repository_root(monkeypatch):
    monkeypatch.chdir(ROOT)


@pytest.fixture(scope="session")
def require_root():
    if os.geteuid() != 0:
        pytest.skip("integration tests need root (network namespaces, Open vSwitch)")
