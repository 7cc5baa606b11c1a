"""What a test does when a service it needs cannot run here: skip it on a developer's machine,
fail it in CI (CI=true or SHOAL_TEST_STRICT=1), where a skip would hide a missing part."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

STRICT = os.environ.get("SHOAL_TEST_STRICT", "") == "1" or os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> NoReturn:
    if STRICT:
        pytest.fail(f"{reason} (strict mode: CI=true / SHOAL_TEST_STRICT=1)", pytrace=False)
    pytest.skip(reason)
