"""The simulated price list: products, plans, hourly prices and monthly caps.

Prices follow a common cloud convention: a plan's monthly price is its cap and
its hourly price is ``monthly / 672`` (28 days × 24 h) rounded half-up to a
micro-dollar, so a resource that lives a whole month pays the cap after ~672
hours and nothing more. All money in integer micro-dollars.
"""

from __future__ import annotations

from dataclasses import dataclass

MICROS = 1_000_000
HOURS_PER_CAP = 672

COMPUTE_PRODUCTS = ("vm",)
PRODUCTS = ("vm", "volume", "object_storage", "load_balancer", "snapshot", "backup", "bandwidth")


def hourly_from_monthly(monthly_micros: int) -> int:
    """monthly / 672, rounded half-up to a whole micro-unit."""
    return (2 * monthly_micros + HOURS_PER_CAP) // (2 * HOURS_PER_CAP)


@dataclass(frozen=True, slots=True)
class Plan:
    product: str
    slug: str
    unit: str
    hourly_price_micros: int  # per unit per hour
    monthly_cap_micros_per_unit: int | None  # cap = this × quantity (units); None = uncapped


def _flat(product: str, slug: str, monthly_usd: float) -> Plan:
    monthly = round(monthly_usd * MICROS)
    return Plan(product, slug, "hour", hourly_from_monthly(monthly), monthly)


def _per_gb(product: str, slug: str, monthly_per_gb_micros: int) -> Plan:
    return Plan(product, slug, "GB-hour", hourly_from_monthly(monthly_per_gb_micros), monthly_per_gb_micros)


# VM sizes, smallest first (upgrades move one step right).
VM_PLANS: tuple[Plan, ...] = (
    _flat("vm", "s-1vcpu-512mb-10gb", 4),
    _flat("vm", "s-1vcpu-1gb", 6),
    _flat("vm", "s-1vcpu-2gb", 12),
    _flat("vm", "s-2vcpu-2gb", 18),
    _flat("vm", "s-2vcpu-4gb", 24),
    _flat("vm", "s-4vcpu-8gb", 48),
    _flat("vm", "g-2vcpu-8gb", 63),
    _flat("vm", "c-4vcpu-8gb", 84),
    _flat("vm", "s-8vcpu-16gb", 96),
    _flat("vm", "g-8vcpu-32gb", 252),
    _flat("vm", "m-16vcpu-128gb", 896),
)
VM_DISK_GB = (10, 25, 50, 60, 80, 160, 25, 50, 320, 100, 400)

VOLUME = _per_gb("volume", "volume-gb", 100_000)  # $0.10 / GB-month
VOLUME_BETA = Plan("volume", "volume-gb-beta", "GB-hour", 0, 0)  # free while in beta
SNAPSHOT = _per_gb("snapshot", "snapshot-gb", 60_000)  # $0.06 / GB-month
BACKUP = _per_gb("backup", "backup-gb", 50_000)  # $0.05 / GB-month
OBJECT_STORAGE = _flat("object_storage", "spaces-250gb", 5)
LB_PLANS = (_flat("load_balancer", "lb-1node", 12), _flat("load_balancer", "lb-3node", 36))
# Transfer beyond the pooled allowance: $0.01 per GB, uncapped.
BANDWIDTH = Plan("bandwidth", "bandwidth-overage", "GB", 10_000, None)

REGIONS = ("nyc1", "nyc3", "sfo3", "tor1", "ams3", "fra1", "lon1", "sgp1", "blr1", "syd1")
REGION_WEIGHTS = (0.08, 0.22, 0.14, 0.05, 0.13, 0.14, 0.09, 0.07, 0.05, 0.03)


def cap_for(plan: Plan, quantity_micros: int) -> int | None:
    """The resource's monthly cap in micro-dollars for `quantity_micros` units."""
    if plan.monthly_cap_micros_per_unit is None:
        return None
    return plan.monthly_cap_micros_per_unit * quantity_micros // MICROS
