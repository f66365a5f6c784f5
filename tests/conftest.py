"""Shared test set-up: markers skip nothing; a missing service fails loudly."""

from __future__ import annotations

from pathlib import Path

import pytest

#: Screenshots and logs the tests leave behind for a reader.
OUTPUT_DIR = Path(__file__).resolve().parent.parent / "test-output"


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT_DIR.mkdir(exist_ok=True)
    return OUTPUT_DIR
