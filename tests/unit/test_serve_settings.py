"""`serve:` settings in shoal.yaml: defaults, limits, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.config import load_settings
from shoal.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "shoal.yaml").write_text(text)
    return tmp_path


def test_defaults_and_limits(tmp_path: Path) -> None:
    s = load_settings(
        write(tmp_path, "name: x\nserve:\n  limits:\n    timeout_s: 5\n    max_concurrent: 2\n")
    )
    assert s.serve.port == 8787
    assert s.serve.pg_port == 5433
    assert s.serve.tokens_file == ".shoal/tokens.json"
    assert s.serve.limits.timeout_s == 5
    assert s.serve.limits.max_concurrent == 2
    assert s.serve.limits.max_rows == 1_000_000


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("serve:\n  tls_cert: /c.pem\n", "tls_cert and tls_key go together"),
        ("serve:\n  port: 9000\n  pg_port: 9000\n", "pg_port 9000 is the HTTP port too"),
        ("serve:\n  limits:\n    timeout_s: 0\n", "serve.limits.timeout_s"),
        ("serve:\n  limits:\n    nope: 1\n", "serve.limits.nope"),
        ("serve:\n  workers: 0\n", "serve.workers"),
    ],
)
def test_bad_serve_settings_are_one_line_errors(tmp_path: Path, yaml_text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        load_settings(write(tmp_path, yaml_text))
    assert "\n" not in str(err.value)
