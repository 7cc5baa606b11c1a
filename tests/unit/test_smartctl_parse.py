from __future__ import annotations

import json
from pathlib import Path

import pytest

from shoal.lake import Lake
from shoal.sources.smartctl import (
    ATTRIBUTES,
    DEVICES,
    SmartctlError,
    parse_smartctl,
    parse_smartctl_file,
    write_reports,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "smartctl"
FILES = sorted(FIXTURES.glob("*.json"))


def test_fixture_count() -> None:
    assert len(FILES) == 168


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_every_fixture_parses(path: Path) -> None:
    raw = json.loads(path.read_text())
    dev = parse_smartctl_file(path).device
    assert dev.protocol == raw["device"]["protocol"]
    assert dev.device == raw["device"]["name"]
    if "model_name" in raw or "scsi_product" in raw:
        assert dev.model
    if raw.get("serial_number"):
        assert dev.serial == raw["serial_number"]
    if raw.get("firmware_version") or raw.get("scsi_revision"):
        assert dev.firmware
    if "user_capacity" in raw or "nvme_total_capacity" in raw:
        assert dev.capacity_bytes
        assert dev.capacity_bytes > 0
    if "passed" in raw.get("smart_status", {}):
        assert dev.health_passed is raw["smart_status"]["passed"]
    if "hours" in raw.get("power_on_time", {}):
        assert dev.power_on_hours == raw["power_on_time"]["hours"]
    if "current" in raw.get("temperature", {}):
        assert dev.temperature_c == raw["temperature"]["current"]
    if "rotation_rate" in raw:
        assert dev.rotation_rate_rpm == raw["rotation_rate"]


def test_ata_attributes() -> None:
    rep = parse_smartctl_file(FIXTURES / "ST3500418AS_11.json")
    assert rep.device.vendor == "Seagate"
    assert rep.device.rotation_rate_rpm == 7200
    rrer = next(a for a in rep.attributes if a.attr_id == 1)
    assert (rrer.kind, rrer.name, rrer.value, rrer.worst, rrer.thresh, rrer.raw) == (
        "ata", "Raw_Read_Error_Rate", 118, 99, 6, 168165566.0,
    )  # fmt: skip
    assert rrer.prefailure is True


def test_nvme_health_log() -> None:
    rep = parse_smartctl_file(FIXTURES / "nvme-null-CT250P2SSD8-nvme0.json")
    assert rep.device.vendor == "Crucial"
    assert rep.device.capacity_bytes == 250059350016
    by_name = {a.name: a.raw for a in rep.attributes}
    assert rep.device.protocol == "NVMe"
    assert by_name["data_units_written"] == 1002900
    assert by_name["temperature_sensors_1"] == 40
    assert by_name["percentage_used"] == 0


def test_scsi_error_counters_and_defects() -> None:
    rep = parse_smartctl_file(FIXTURES / "SEAGATE_ST373453LC_26.json")
    d = rep.device
    assert (d.vendor, d.model, d.rotation_rate_rpm, d.power_on_hours) == (
        "SEAGATE",
        "ST373453LC",
        15015,
        102880,
    )
    by_name = {a.name: a.raw for a in rep.attributes}
    assert by_name["write.total_uncorrected_errors"] == 535
    assert by_name["read.gigabytes_processed"] == pytest.approx(11523.849)
    assert by_name["grown_defect_list"] == 260


def test_not_smartctl() -> None:
    with pytest.raises(SmartctlError):
        parse_smartctl('{"hello": 1}')
    with pytest.raises(SmartctlError):
        parse_smartctl("not json")


def test_write_reports_idempotent(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    reports = [parse_smartctl_file(p, host=p.stem) for p in FILES[:20]]
    n_dev, n_attr = write_reports(lake, reports)
    assert n_dev == 20
    assert n_attr == sum(len(r.attributes) for r in reports)
    assert write_reports(lake, reports)[1] == 0
    assert lake.table(DEVICES).count() == 20
    assert lake.table(ATTRIBUTES).count() == n_attr
