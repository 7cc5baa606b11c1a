"""Write parsed smartctl reports to ``infra.smart_devices`` and ``infra.smart_attributes``."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pyarrow as pa

from shoal.lake import Lake
from shoal.sources.smartctl.parser import SmartReport

DEVICES = "infra.smart_devices"
ATTRIBUTES = "infra.smart_attributes"
_TS = pa.timestamp("ms", tz="UTC")

DEVICES_SCHEMA = pa.schema(
    [
        pa.field("device_id", pa.int64(), nullable=False),
        ("host", pa.string()),
        ("device", pa.string()),
        ("protocol", pa.string()),
        ("device_type", pa.string()),
        ("vendor", pa.string()),
        ("model", pa.string()),
        ("model_family", pa.string()),
        ("serial", pa.string()),
        ("firmware", pa.string()),
        ("wwn", pa.string()),
        ("capacity_bytes", pa.int64()),
        ("logical_block_size", pa.int64()),
        ("rotation_rate_rpm", pa.int64()),
        ("form_factor", pa.string()),
        ("health_passed", pa.bool_()),
        ("power_on_hours", pa.int64()),
        ("power_cycles", pa.int64()),
        ("temperature_c", pa.float64()),
        ("collected_at", _TS),
        ("smartctl_version", pa.string()),
        ("exit_status", pa.int64()),
        ("source", pa.string()),
    ]
)
ATTRIBUTES_SCHEMA = pa.schema(
    [
        pa.field("device_id", pa.int64(), nullable=False),
        ("collected_at", _TS),
        ("kind", pa.string()),
        ("name", pa.string()),
        ("attr_id", pa.int64()),
        ("value", pa.int64()),
        ("worst", pa.int64()),
        ("thresh", pa.int64()),
        ("raw", pa.float64()),
        ("raw_string", pa.string()),
        ("when_failed", pa.string()),
        ("prefailure", pa.bool_()),
    ]
)


def reports_to_tables(reports: Sequence[SmartReport]) -> tuple[pa.Table, pa.Table]:
    devices = pa.Table.from_pylist([dataclasses.asdict(r.device) for r in reports], schema=DEVICES_SCHEMA)
    attrs = pa.Table.from_pylist(
        [dataclasses.asdict(a) for r in reports for a in r.attributes], schema=ATTRIBUTES_SCHEMA
    )
    return devices, attrs


def write_reports(lake: Lake, reports: Sequence[SmartReport]) -> tuple[int, int]:
    """Upsert devices (latest report per device_id wins) and append attribute readings.

    Attribute readings already stored for the same (device_id, collected_at) are skipped, so
    loading the same file twice does not duplicate them. Returns (devices, attributes) rows written.
    """
    devices, attrs = reports_to_tables(reports)
    src = "shoal.sources.smartctl"
    dev_t = lake.create_table(
        DEVICES, DEVICES_SCHEMA, description="Disks seen by smartctl: identity, health", source=src
    )
    att_t = lake.create_table(
        ATTRIBUTES, ATTRIBUTES_SCHEMA, description="smartctl attributes per device and reading", source=src
    )
    if devices.num_rows:
        # one row per device_id in the source, latest reading last wins
        latest: dict[int, int] = {}
        for i, did in enumerate(devices["device_id"].to_pylist()):
            latest[did] = i
        devices = devices.take(sorted(latest.values()))
        dev_t.merge(devices, ["device_id"])
    if attrs.num_rows:
        # A reading is (device_id, collected_at): skip readings already stored, so loading the
        # same files twice appends nothing.
        have = att_t.to_arrow(columns=["device_id", "collected_at"])
        seen = set(zip(have["device_id"].to_pylist(), have["collected_at"].to_pylist(), strict=True))
        keys = zip(attrs["device_id"].to_pylist(), attrs["collected_at"].to_pylist(), strict=True)
        mask = pa.array([k not in seen for k in keys], pa.bool_())
        attrs = attrs.filter(mask)
        if attrs.num_rows:
            att_t.append(attrs)
    return devices.num_rows, attrs.num_rows
