"""smartctl JSON (``smartctl --json -a``) into ``infra.smart_devices`` / ``infra.smart_attributes``."""

from __future__ import annotations

from shoal.sources.smartctl.parser import (
    SmartAttribute,
    SmartctlError,
    SmartDevice,
    SmartReport,
    device_id,
    parse_smartctl,
    parse_smartctl_file,
)
from shoal.sources.smartctl.writer import (
    ATTRIBUTES,
    ATTRIBUTES_SCHEMA,
    DEVICES,
    DEVICES_SCHEMA,
    reports_to_tables,
    write_reports,
)

__all__ = [
    "ATTRIBUTES",
    "ATTRIBUTES_SCHEMA",
    "DEVICES",
    "DEVICES_SCHEMA",
    "SmartAttribute",
    "SmartDevice",
    "SmartReport",
    "SmartctlError",
    "device_id",
    "parse_smartctl",
    "parse_smartctl_file",
    "reports_to_tables",
    "write_reports",
]
