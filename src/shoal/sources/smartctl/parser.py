"""Parse ``smartctl --json -a`` output (ATA, NVMe, SCSI) into device identity and attributes.

Identity fields are taken from where each protocol puts them (``model_name`` vs
``scsi_product``, ``firmware_version`` vs ``scsi_revision``, ``user_capacity`` vs
``nvme_total_capacity``); a field absent from the file is None. Attributes are flattened to one
row each: ATA SMART attributes (id/name/value/worst/thresh/raw), NVMe health-log fields
(name/raw) and SCSI error counters (``read.total_uncorrected_errors`` ...) plus the grown
defect list and start/stop counters.

``device_id`` is a stable signed 64-bit blake2b hash of (host, device path, protocol, model,
serial, wwn): the same disk reported again by the same host gets the same id.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from hashlib import blake2b
from pathlib import Path
from typing import Any

from shoal.errors import ShoalError, Terminal


class SmartctlError(ShoalError, Terminal):
    """The input is not smartctl JSON output."""


# PCI vendor ids seen on NVMe drives (nvme_pci_vendor.id).
PCI_VENDORS: dict[int, str] = {
    0x8086: "Intel",
    0x144D: "Samsung",
    0x1344: "Micron",
    0xC0A9: "Crucial",
    0x1179: "Toshiba",
    0x1E0F: "KIOXIA",
    0x1C58: "HGST",
    0x1B96: "Western Digital",
    0x15B7: "SanDisk",
    0x1C5C: "SK hynix",
    0x2646: "Kingston",
    0x1BB1: "Seagate",
    0x126F: "Silicon Motion",
    0x1987: "Phison",
    0x1CC1: "ADATA",
    0x1D97: "Shenzhen Longsys",
}

# Model-name prefixes (ATA drives rarely report a vendor field).
_MODEL_VENDORS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p, re.IGNORECASE), v)
    for p, v in [
        (r"^WDC[ _]|^WD\d|^WUH\d|^WUS\d", "Western Digital"),
        (r"^ST\d|^SEAGATE", "Seagate"),
        (r"^HGST|^HUS|^HUH|^HMS", "HGST"),
        (r"^HITACHI", "Hitachi"),
        (r"^TOSHIBA|^KXG|^MG\d", "Toshiba"),
        (r"^SAMSUNG|^MZ", "Samsung"),
        (r"^INTEL|^SSDS", "Intel"),
        (r"^MICRON|^MTFD", "Micron"),
        (r"^CT\d", "Crucial"),
        (r"^KINGSTON", "Kingston"),
        (r"^TS\d", "Transcend"),
    ]
]
_FAMILY_VENDORS = ["Western Digital", "Seagate", "Toshiba", "HGST", "Hitachi", "Samsung", "Intel", "Micron"]


@dataclass(frozen=True)
class SmartDevice:
    device_id: int
    host: str
    device: str | None
    protocol: str | None
    device_type: str | None
    vendor: str | None
    model: str | None
    model_family: str | None
    serial: str | None
    firmware: str | None
    wwn: str | None
    capacity_bytes: int | None
    logical_block_size: int | None
    rotation_rate_rpm: int | None  # 0 = solid state
    form_factor: str | None
    health_passed: bool | None
    power_on_hours: int | None
    power_cycles: int | None
    temperature_c: float | None
    collected_at: datetime | None
    smartctl_version: str | None
    exit_status: int | None
    source: str


@dataclass(frozen=True)
class SmartAttribute:
    device_id: int
    collected_at: datetime | None
    kind: str  # "ata" | "nvme" | "scsi"
    name: str
    attr_id: int | None = None
    value: int | None = None
    worst: int | None = None
    thresh: int | None = None
    raw: float | None = None
    raw_string: str | None = None
    when_failed: str | None = None
    prefailure: bool | None = None


@dataclass(frozen=True)
class SmartReport:
    device: SmartDevice
    attributes: list[SmartAttribute] = field(default_factory=list)


def _get(d: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


def _int(v: Any) -> int | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return int(v)
    if isinstance(v, str):
        try:
            return int(float(v))
        except ValueError:
            return None
    return None


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _str(v: Any) -> str | None:
    if v is None:
        return None
    s = str(v).strip()
    return s or None


def _vendor(data: dict[str, Any], model: str | None, family: str | None) -> str | None:
    vendor = _str(data.get("scsi_vendor")) or _str(data.get("vendor"))
    if vendor:
        return vendor
    pci = _int(_get(data, "nvme_pci_vendor", "id"))
    if pci is not None and pci in PCI_VENDORS:
        return PCI_VENDORS[pci]
    if model:
        for pat, name in _MODEL_VENDORS:
            if pat.search(model):
                return name
    if family:
        for name in _FAMILY_VENDORS:
            if family.lower().startswith(name.lower()):
                return name
    return None


def _wwn(data: dict[str, Any]) -> str | None:
    w = data.get("wwn")
    if isinstance(w, dict) and {"naa", "oui", "id"} <= w.keys():
        return f"{w['naa']:x} {w['oui']:06x} {w['id']:09x}"
    return _str(data.get("logical_unit_id"))


def device_id(
    host: str,
    *,
    device: str | None,
    protocol: str | None,
    model: str | None,
    serial: str | None,
    wwn: str | None,
) -> int:
    key = "\xff".join(x or "" for x in (host, device, protocol, model, serial, wwn)).encode()
    return int.from_bytes(blake2b(key, digest_size=8).digest(), "little", signed=True)


def _attributes(data: dict[str, Any], dev_id: int, at: datetime | None) -> list[SmartAttribute]:
    out: list[SmartAttribute] = []
    for a in _get(data, "ata_smart_attributes", "table") or []:
        if not isinstance(a, dict):
            continue
        out.append(
            SmartAttribute(
                dev_id,
                at,
                "ata",
                _str(a.get("name")) or f"attribute_{a.get('id')}",
                attr_id=_int(a.get("id")),
                value=_int(a.get("value")),
                worst=_int(a.get("worst")),
                thresh=_int(a.get("thresh")),
                raw=_num(_get(a, "raw", "value")),
                raw_string=_str(_get(a, "raw", "string")),
                when_failed=_str(a.get("when_failed")),
                prefailure=_get(a, "flags", "prefailure"),
            )
        )
    nvme = data.get("nvme_smart_health_information_log")
    if isinstance(nvme, dict):
        for k, v in nvme.items():
            if isinstance(v, list):
                for i, x in enumerate(v, 1):
                    out.append(SmartAttribute(dev_id, at, "nvme", f"{k}_{i}", raw=_num(x), raw_string=str(x)))
            elif _num(v) is not None:
                out.append(SmartAttribute(dev_id, at, "nvme", k, raw=_num(v), raw_string=str(v)))
    errors = data.get("scsi_error_counter_log")
    if isinstance(errors, dict):
        for op, counters in errors.items():
            if isinstance(counters, dict):
                for k, v in counters.items():
                    out.append(
                        SmartAttribute(dev_id, at, "scsi", f"{op}.{k}", raw=_num(v), raw_string=str(v))
                    )
    if "scsi_grown_defect_list" in data:
        v = data["scsi_grown_defect_list"]
        out.append(SmartAttribute(dev_id, at, "scsi", "grown_defect_list", raw=_num(v), raw_string=str(v)))
    cycles = data.get("scsi_start_stop_cycle_counter")
    if isinstance(cycles, dict):
        for k, v in cycles.items():
            out.append(SmartAttribute(dev_id, at, "scsi", f"start_stop.{k}", raw=_num(v), raw_string=str(v)))
    return out


def parse_smartctl(data: dict[str, Any] | str | bytes, *, host: str = "", source: str = "") -> SmartReport:
    """Parse one ``smartctl --json`` document (dict or JSON text)."""
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except ValueError as err:
            raise SmartctlError(f"{source or 'input'}: not JSON: {err}") from err
    if not isinstance(data, dict) or not isinstance(data.get("device"), dict) or "smartctl" not in data:
        raise SmartctlError(f"{source or 'input'}: not smartctl --json output (no 'device'/'smartctl' keys)")
    dev = data["device"]
    protocol = _str(dev.get("protocol"))
    model = (
        _str(data.get("model_name")) or _str(data.get("scsi_product")) or _str(data.get("scsi_model_name"))
    )
    family = _str(data.get("model_family"))
    serial = _str(data.get("serial_number"))
    wwn = _wwn(data)
    t = _int(_get(data, "local_time", "time_t"))
    at = datetime.fromtimestamp(t, tz=UTC) if t is not None else None
    capacity = _int(_get(data, "user_capacity", "bytes")) or _int(data.get("nvme_total_capacity"))
    rotation = _int(data.get("rotation_rate"))
    version = _get(data, "smartctl", "version")
    power_cycles = _int(data.get("power_cycle_count"))
    if power_cycles is None:
        power_cycles = _int(_get(data, "scsi_start_stop_cycle_counter", "accumulated_start_stop_cycles"))
    temp = _num(_get(data, "temperature", "current"))
    dev_name = _str(dev.get("name"))
    dev_id = device_id(host, device=dev_name, protocol=protocol, model=model, serial=serial, wwn=wwn)
    device = SmartDevice(
        device_id=dev_id,
        host=host,
        device=dev_name,
        protocol=protocol,
        device_type=_str(dev.get("type")),
        vendor=_vendor(data, model, family),
        model=model,
        model_family=family,
        serial=serial,
        firmware=_str(data.get("firmware_version")) or _str(data.get("scsi_revision")),
        wwn=wwn,
        capacity_bytes=capacity,
        logical_block_size=_int(data.get("logical_block_size")),
        rotation_rate_rpm=rotation,
        form_factor=_str(_get(data, "form_factor", "name")),
        health_passed=_get(data, "smart_status", "passed"),
        power_on_hours=_int(_get(data, "power_on_time", "hours")),
        power_cycles=power_cycles,
        temperature_c=temp,
        collected_at=at,
        smartctl_version=".".join(str(x) for x in version) if isinstance(version, list) else None,
        exit_status=_int(_get(data, "smartctl", "exit_status")),
        source=source,
    )
    return SmartReport(device, _attributes(data, dev_id, at))


def parse_smartctl_file(path: str | Path, *, host: str = "") -> SmartReport:
    p = Path(path)
    try:
        text = p.read_bytes()
    except OSError as err:
        raise SmartctlError(f"{p}: cannot read: {err.strerror or err}") from err
    return parse_smartctl(text, host=host, source=str(p))
