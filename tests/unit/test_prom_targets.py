from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shoal.errors import ConfigError
from shoal.sources.prometheus import TargetsFile, load_targets, parse_targets


def test_file_sd_yaml_defaults_and_special_labels(tmp_path: Path) -> None:
    f = tmp_path / "t.yaml"
    f.write_text(
        "- targets: ['a:9100', 'b:9100']\n"
        "  labels: {env: prod}\n"
        "- targets: ['c:8080']\n"
        "  labels: {job: api, __metrics_path__: /m, __scheme__: https, instance: api-1}\n"
    )
    ts = load_targets(f, default_job="node")
    assert [t.url for t in ts] == ["http://a:9100/metrics", "http://b:9100/metrics", "https://c:8080/m"]
    assert ts[0].label_dict() == {"env": "prod", "job": "node", "instance": "a:9100"}
    assert ts[2].label_dict() == {"job": "api", "instance": "api-1"}  # __ labels are not stored


def test_json_is_accepted(tmp_path: Path) -> None:
    f = tmp_path / "t.json"
    f.write_text(json.dumps([{"targets": ["x:1"]}]))
    assert load_targets(f, default_job="j")[0].job == "j"


@pytest.mark.parametrize(
    "data", [{"targets": ["a"]}, [{"targets": "a:1"}], [{"targets": ["a:1"], "labels": [1]}]]
)
def test_invalid_shapes(data: object) -> None:
    with pytest.raises(ConfigError):
        parse_targets(data, default_job="j")


def _touch_changed(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_reload_on_change_and_keep_previous_on_error(tmp_path: Path) -> None:
    f = tmp_path / "t.yaml"
    f.write_text("- targets: ['a:1']\n")
    tf = TargetsFile(f, default_job="j")
    assert [t.address for t in tf.current()] == ["a:1"]
    assert tf.current() is tf.current()  # unchanged file: not re-read
    _touch_changed(f, "- targets: ['a:1', 'b:2']\n")
    assert [t.address for t in tf.current()] == ["a:1", "b:2"]
    _touch_changed(f, "- targets: [unterminated\n")
    assert [t.address for t in tf.current()] == ["a:1", "b:2"]
    assert tf.last_error is not None
    assert "invalid" in tf.last_error
    _touch_changed(f, "[]\n")
    assert tf.current() == []
    assert tf.last_error is None


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        TargetsFile(tmp_path / "nope.yaml", default_job="j").current()
