"""A seeded, deterministic fleet: regions → datacenters → podlets → racks → hypervisors → VMs.

Every rack has two PDUs (A and B) with three phases; each hypervisor has one PSU on an outlet of each
PDU (outlet number = rack slot, phase = slot mod 3). Each hypervisor carries a few disks drawn from a
vendor/model mix taken from real smartctl outputs. Entity ids are globally unique names that
extend their parent's (``euw1-dc1-p2-r07`` → ``euw1-dc1-p2-r07-pdu-a`` → ``euw1-dc1-p2-r07-pdu-a/L1/o07``;
``euw1-dc1-p2-r07-hv03/sda``), so ancestry is a prefix test (:func:`is_ancestor`) and the same ids can be
rebuilt in SQL from series labels.

Per-entity attributes are numpy arrays (one element per entity) so the simulator can vectorise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from shoal.errors import ConfigError

PHASES = ("L1", "L2", "L3")
PDU_SIDES = ("a", "b")


@dataclass(frozen=True)
class DiskModel:
    vendor: str
    model: str
    protocol: str  # ATA | NVMe
    capacity_bytes: int
    rotational: bool
    weight: float  # share of the fleet
    degrade_prone: float  # relative likelihood of a degradation fault


# Vendor/model names as they appear in smartctl --json outputs (shared fixtures).
DISK_MODELS: tuple[DiskModel, ...] = (
    DiskModel("Seagate", "ST8000NM0055-1RM112", "ATA", 8_001_563_222_016, True, 0.14, 1.4),
    DiskModel("Seagate", "ST16000NM001G-2KK103", "ATA", 16_000_900_661_248, True, 0.12, 1.0),
    DiskModel("WDC", "WDC  WUH721818ALE6L4", "ATA", 18_000_207_937_536, True, 0.12, 0.8),
    DiskModel("WDC", "WDC WD2000FYYZ-01UL1B1", "ATA", 2_000_398_934_016, True, 0.06, 1.6),
    DiskModel("Toshiba", "TOSHIBA MG08ACA16TE", "ATA", 16_000_900_661_248, True, 0.10, 0.9),
    DiskModel("HGST", "HGST HUS724020ALE640", "ATA", 2_000_398_934_016, True, 0.05, 1.8),
    DiskModel("Samsung", "SAMSUNG MZ7LH1T9HMLT-00005", "ATA", 1_920_383_410_176, False, 0.10, 0.5),
    DiskModel("Samsung", "SAMSUNG MZQLB1T9HAJR-00007", "NVMe", 1_920_383_410_176, False, 0.09, 0.5),
    DiskModel("Intel", "INTEL SSDPE2KX080T8", "NVMe", 8_001_563_222_016, False, 0.12, 0.6),
    DiskModel("Intel", "INTEL SSDPE2KE032T8", "NVMe", 3_200_631_791_616, False, 0.10, 0.6),
)

# Hypervisor workload types (what the VMs on a host mostly do): each has its own daily CPU and memory
# pattern in the simulator, so a clustering of the hosts' profiles has something real to find.
WORKLOADS = ("daytime", "nightly-batch", "steady", "memory-heavy")
# GiB of RAM per vCPU of the VMs a workload type runs (in-memory databases and caches want more)
_GIB_PER_VCPU = np.array([4.0, 4.0, 4.0, 16.0])
# the share of host memory the VMs are planned to fill (hosts were bought to fit their VMs)
_MEM_TARGET = ((0.40, 0.60), (0.35, 0.50), (0.45, 0.65), (0.80, 0.90))
MIXED_WORKLOADS = (0.4, 0.2, 0.2, 0.2)
GIB = 1 << 30
# derating of a PDU's breaker for continuous load (80 %, as the NEC and most DC policies require)
PDU_DERATING = 0.8

REGIONS = (
    ("euw1", "eu-west-1", 0, 230.0),  # code, name, UTC offset (h), nominal phase voltage
    ("use1", "us-east-1", -5, 208.0),
    ("apse1", "ap-southeast-1", 8, 230.0),
    ("usw2", "us-west-2", -8, 208.0),
)


@dataclass(frozen=True)
class TopologyConfig:
    """Fleet size. Defaults give 1 region x 2 DCs x 3 podlets x 6 racks x 12 hypervisors."""

    seed: int = 7
    regions: int = 1
    datacenters_per_region: int = 2
    podlets_per_datacenter: int = 3
    racks_per_podlet: int = 6
    hypervisors_per_rack: int = 12
    disks_per_hypervisor: int = 2
    vms_per_hypervisor: tuple[int, int] = (4, 24)  # inclusive range
    # weights of WORKLOADS among the hypervisors. The default, daytime only, keeps every CPU, power,
    # PDU and disk value exactly as before workload types existed (the detectors' measured figures
    # hold on it); MIXED_WORKLOADS gives the profile clustering something to find
    workload_mix: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)
    # per-phase rating of a rack's PDUs, drawn per rack from these (amperes)
    pdu_phase_ratings_a: tuple[float, ...] = (10.0, 16.0)

    def __post_init__(self) -> None:
        if not 1 <= self.regions <= len(REGIONS):
            raise ConfigError(f"regions must be between 1 and {len(REGIONS)}, got {self.regions}")
        for name in (
            "datacenters_per_region",
            "podlets_per_datacenter",
            "racks_per_podlet",
            "hypervisors_per_rack",
            "disks_per_hypervisor",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if (
            len(self.workload_mix) != len(WORKLOADS)
            or min(self.workload_mix) < 0
            or sum(self.workload_mix) <= 0
        ):
            raise ConfigError(f"workload_mix needs {len(WORKLOADS)} weights >= 0, got {self.workload_mix}")
        if self.hypervisors_per_rack > 48:
            raise ConfigError(
                f"hypervisors_per_rack must be <= 48 (PDU outlets), got {self.hypervisors_per_rack}"
            )


def _disk_device_name(protocol: str, index: int) -> str:
    if protocol == "NVMe":
        return f"nvme{index}n1"
    return "sd" + chr(ord("a") + index)


@dataclass(frozen=True)
class Topology:
    """Entities of the fleet; arrays are aligned per entity kind."""

    config: TopologyConfig
    # racks
    rack_id: list[str]
    rack_labels: list[dict[str, str]]  # region/datacenter/podlet/rack
    rack_podlet: np.ndarray  # podlet index per rack
    rack_region: np.ndarray  # region index per rack
    rack_load: np.ndarray  # rack-level load factor (tenants differ)
    # power the rack may draw: one PDU's 3 phases x rating x phase voltage x derating (A/B feeds are
    # redundant: either must carry the whole rack alone)
    rack_power_budget_w: np.ndarray
    podlet_id: list[str]
    # hypervisors
    host_id: list[str]
    host_rack: np.ndarray
    host_slot: np.ndarray
    host_cores: np.ndarray
    host_idle_w: np.ndarray
    host_max_w: np.ndarray
    host_util: np.ndarray  # mean CPU utilisation from its VMs
    host_workload: np.ndarray  # index into WORKLOADS
    host_mem_total: np.ndarray  # bytes
    host_mem_overhead: np.ndarray  # bytes the hypervisor itself uses
    host_vm_mem: np.ndarray  # bytes: the sum of its VMs' memory
    # PDUs (2 per rack) and outlets (one per host per PDU)
    pdu_id: list[str]
    pdu_rack: np.ndarray
    pdu_side: np.ndarray  # 0 = a, 1 = b
    outlet_id: list[str]
    outlet_pdu: np.ndarray
    outlet_host: np.ndarray
    outlet_phase: np.ndarray
    outlet_share: np.ndarray  # share of the host load on this PSU (~0.5)
    # disks
    disk_id: list[str]
    disk_host: np.ndarray
    disk_device: list[str]
    disk_model: np.ndarray  # index into DISK_MODELS
    disk_serial: list[str]
    disk_base_temp: np.ndarray
    disk_poh0: np.ndarray  # power-on hours at epoch 0 of the simulation
    disk_realloc0: np.ndarray  # reallocated sectors already present
    # VMs
    vm_id: list[str]
    vm_host: np.ndarray
    vm_vcpus: np.ndarray
    vm_util: np.ndarray
    vm_mem: np.ndarray  # bytes
    region_offset_h: np.ndarray = field(repr=False)  # per region
    region_voltage: np.ndarray = field(repr=False)

    @property
    def n_racks(self) -> int:
        return len(self.rack_id)

    @property
    def n_hosts(self) -> int:
        return len(self.host_id)

    @property
    def n_pdus(self) -> int:
        return len(self.pdu_id)

    @property
    def n_outlets(self) -> int:
        return len(self.outlet_id)

    @property
    def n_disks(self) -> int:
        return len(self.disk_id)

    def host_labels(self, h: int) -> dict[str, str]:
        return {**self.rack_labels[int(self.host_rack[h])], "host": self.host_id[h]}

    def pdu_labels(self, p: int) -> dict[str, str]:
        return {**self.rack_labels[int(self.pdu_rack[p])], "pdu": self.pdu_id[p]}

    def entities(self) -> pa.Table:
        """One row per entity: entity path, level, parent path and descriptive columns."""
        rows: dict[str, list[str | None]] = {
            k: [] for k in ("entity", "level", "parent", "vendor", "model", "host", "rack", "podlet")
        }

        def add(entity: str, level: str, parent: str | None, **extra: str | None) -> None:
            rows["entity"].append(entity)
            rows["level"].append(level)
            rows["parent"].append(parent)
            for k in ("vendor", "model", "host", "rack", "podlet"):
                rows[k].append(extra.get(k))

        for r, rid in enumerate(self.rack_id):
            add(
                rid,
                "rack",
                self.podlet_id[int(self.rack_podlet[r])],
                rack=rid,
                podlet=self.podlet_id[int(self.rack_podlet[r])],
            )
        for p, pid in enumerate(self.pdu_id):
            rid = self.rack_id[int(self.pdu_rack[p])]
            add(pid, "pdu", rid, rack=rid)
            for ph in PHASES:
                add(f"{pid}/{ph}", "phase", pid, rack=rid)
        for o, oid in enumerate(self.outlet_id):
            h = int(self.outlet_host[o])
            add(
                oid,
                "outlet",
                oid.rsplit("/", 1)[0],
                host=self.host_id[h],
                rack=self.rack_id[int(self.host_rack[h])],
            )
        for h, hid in enumerate(self.host_id):
            add(
                hid,
                "hypervisor",
                self.rack_id[int(self.host_rack[h])],
                host=hid,
                rack=self.rack_id[int(self.host_rack[h])],
            )
        for d, did in enumerate(self.disk_id):
            m = DISK_MODELS[int(self.disk_model[d])]
            h = int(self.disk_host[d])
            add(
                did,
                "disk",
                self.host_id[h],
                vendor=m.vendor,
                model=m.model,
                host=self.host_id[h],
                rack=self.rack_id[int(self.host_rack[h])],
            )
        # numeric inventory the placement models read: a rack's power budget, a host's cores and VMs
        budget: list[float | None] = [float(w) for w in self.rack_power_budget_w]
        cores: list[int | None] = [None] * self.n_racks
        vms: list[int | None] = [None] * self.n_racks
        rest = len(rows["entity"]) - self.n_racks - self.n_hosts - self.n_disks
        budget += [None] * (rest + self.n_hosts + self.n_disks)
        n_vms = np.bincount(self.vm_host, minlength=self.n_hosts)
        cores += [None] * rest + [int(c) for c in self.host_cores] + [None] * self.n_disks
        vms += [None] * rest + [int(v) for v in n_vms] + [None] * self.n_disks
        return pa.table(
            {
                **rows,
                "power_budget_w": pa.array(budget, pa.float64()),
                "cpu_cores": pa.array(cores, pa.int32()),
                "vms": pa.array(vms, pa.int32()),
            }
        )


def is_ancestor(ancestor: str, entity: str) -> bool:
    """True if ``entity`` is ``ancestor`` or lies below it (``-`` or ``/`` continues the name)."""
    if entity == ancestor:
        return True
    return entity.startswith(ancestor) and entity[len(ancestor)] in "-/"


def build_topology(config: TopologyConfig | None = None) -> Topology:
    """Build the fleet for ``config``; the same config always yields the same fleet."""
    cfg = config or TopologyConfig()
    rng = np.random.default_rng([cfg.seed, 1])
    rack_id: list[str] = []
    rack_labels: list[dict[str, str]] = []
    rack_podlet: list[int] = []
    rack_region: list[int] = []
    podlet_id: list[str] = []
    for ri in range(cfg.regions):
        code, region_name, _, _ = REGIONS[ri]
        for di in range(cfg.datacenters_per_region):
            dc = f"dc{di + 1}"
            for pi in range(cfg.podlets_per_datacenter):
                pod = f"p{pi + 1}"
                podlet_id.append(f"{code}-{dc}-{pod}")
                for ki in range(cfg.racks_per_podlet):
                    rack = f"r{ki + 1:02d}"
                    rack_id.append(f"{code}-{dc}-{pod}-{rack}")
                    rack_labels.append(
                        {
                            "region": region_name,
                            "datacenter": f"{code}-{dc}",
                            "podlet": f"{code}-{dc}-{pod}",
                            "rack": f"{code}-{dc}-{pod}-{rack}",
                        }
                    )
                    rack_podlet.append(len(podlet_id) - 1)
                    rack_region.append(ri)
    n_racks = len(rack_id)
    rack_load = rng.uniform(0.8, 1.2, n_racks)

    hpr = cfg.hypervisors_per_rack
    n_hosts = n_racks * hpr
    host_rack = np.repeat(np.arange(n_racks), hpr)
    host_slot = np.tile(np.arange(hpr), n_racks)
    host_id = [f"{rack_id[r]}-hv{s + 1:02d}" for r, s in zip(host_rack, host_slot, strict=True)]
    # hardware generations: cores and power envelope
    gen = rng.integers(0, 3, n_hosts)
    host_cores = np.array([32, 64, 96])[gen]
    host_idle_w = np.array([140.0, 180.0, 220.0])[gen] * rng.uniform(0.92, 1.08, n_hosts)
    host_max_w = np.array([420.0, 560.0, 720.0])[gen] * rng.uniform(0.95, 1.05, n_hosts)

    # VMs: vcpus and mean utilisation; the host's mean CPU use is their sum over its cores
    lo, hi = cfg.vms_per_hypervisor
    n_vms_per_host = rng.integers(lo, hi + 1, n_hosts)
    vm_host = np.repeat(np.arange(n_hosts), n_vms_per_host)
    vm_vcpus = rng.choice(np.array([1, 2, 4, 8]), size=len(vm_host), p=[0.3, 0.35, 0.25, 0.1])
    vm_util = rng.beta(2.0, 4.0, len(vm_host))
    vm_id = [f"{host_id[h]}/vm{i:03d}" for i, h in enumerate(vm_host)]
    host_util = np.bincount(vm_host, weights=vm_vcpus * vm_util, minlength=n_hosts) / host_cores
    host_util = np.clip(host_util * rack_load[host_rack], 0.03, 0.9)

    # workload types, memory and power budgets come from their own stream, so the draws above (and
    # every value the simulator derived from them before workload types existed) stay as they were
    wrng = np.random.default_rng([cfg.seed, 4])
    mix = np.asarray(cfg.workload_mix, dtype=np.float64)
    host_workload = wrng.choice(len(WORKLOADS), size=n_hosts, p=mix / mix.sum())
    vm_mem = vm_vcpus * _GIB_PER_VCPU[host_workload[vm_host]] * GIB
    host_vm_mem = np.bincount(vm_host, weights=vm_mem, minlength=n_hosts)
    lo_t = np.array([t[0] for t in _MEM_TARGET])[host_workload]
    hi_t = np.array([t[1] for t in _MEM_TARGET])[host_workload]
    host_mem_overhead = np.full(n_hosts, 8.0 * GIB)
    target = wrng.uniform(lo_t, hi_t)
    # totals come in 64 GiB steps: the smallest that keeps the planned share
    host_mem_total = np.ceil((host_vm_mem + host_mem_overhead) / target / (64 * GIB)) * (64 * GIB)
    rating = wrng.choice(np.asarray(cfg.pdu_phase_ratings_a, dtype=np.float64), size=n_racks)
    volts = np.array([REGIONS[int(r)][3] for r in rack_region])
    rack_power_budget_w = 3 * rating * volts * PDU_DERATING

    pdu_rack = np.repeat(np.arange(n_racks), 2)
    pdu_side = np.tile(np.arange(2), n_racks)
    pdu_id = [f"{rack_id[r]}-pdu-{PDU_SIDES[s]}" for r, s in zip(pdu_rack, pdu_side, strict=True)]

    # outlets ordered by pdu then slot
    outlet_pdu = np.repeat(np.arange(len(pdu_id)), hpr)
    outlet_slot = np.tile(np.arange(hpr), len(pdu_id))
    outlet_host = pdu_rack[outlet_pdu] * hpr + outlet_slot
    outlet_phase = outlet_slot % 3
    outlet_id = [
        f"{pdu_id[p]}/{PHASES[ph]}/o{s + 1:02d}"
        for p, ph, s in zip(outlet_pdu, outlet_phase, outlet_slot, strict=True)
    ]
    # PSUs never share exactly half: a few percent skew per host
    skew = rng.normal(0.0, 0.03, n_hosts)
    outlet_share = np.where(pdu_side[outlet_pdu] == 0, 0.5 + skew[outlet_host], 0.5 - skew[outlet_host])

    dph = cfg.disks_per_hypervisor
    weights = np.array([m.weight for m in DISK_MODELS])
    # a host gets one model for all its disks (bought together); models mix across hosts
    host_model = rng.choice(len(DISK_MODELS), size=n_hosts, p=weights / weights.sum())
    disk_host = np.repeat(np.arange(n_hosts), dph)
    disk_idx = np.tile(np.arange(dph), n_hosts)
    disk_model = host_model[disk_host]
    disk_device = [
        _disk_device_name(DISK_MODELS[m].protocol, i) for m, i in zip(disk_model, disk_idx, strict=True)
    ]
    disk_id = [f"{host_id[h]}/{dev}" for h, dev in zip(disk_host, disk_device, strict=True)]
    serial_nums = rng.integers(10**7, 10**8, len(disk_host))
    disk_serial = [
        f"{DISK_MODELS[m].vendor[:2].upper()}{s}" for m, s in zip(disk_model, serial_nums, strict=True)
    ]
    rotational = np.array([DISK_MODELS[m].rotational for m in disk_model])
    disk_base_temp = np.where(rotational, 33.0, 38.0) + rng.normal(0.0, 2.0, len(disk_host))
    disk_poh0 = rng.integers(500, 45_000, len(disk_host)).astype(np.float64)
    # most disks have no remapped sectors; a tail has a few (old, harmless)
    disk_realloc0 = np.where(rng.random(len(disk_host)) < 0.08, rng.integers(1, 40, len(disk_host)), 0)

    region_offset_h = np.array([REGIONS[i][2] for i in range(cfg.regions)], dtype=np.float64)
    region_voltage = np.array([REGIONS[i][3] for i in range(cfg.regions)], dtype=np.float64)
    return Topology(
        config=cfg,
        rack_id=rack_id,
        rack_labels=rack_labels,
        rack_podlet=np.asarray(rack_podlet),
        rack_region=np.asarray(rack_region),
        rack_load=rack_load,
        rack_power_budget_w=rack_power_budget_w,
        podlet_id=podlet_id,
        host_id=host_id,
        host_rack=host_rack,
        host_slot=host_slot,
        host_cores=host_cores,
        host_idle_w=host_idle_w,
        host_max_w=host_max_w,
        host_util=host_util,
        host_workload=host_workload,
        host_mem_total=host_mem_total,
        host_mem_overhead=host_mem_overhead,
        host_vm_mem=host_vm_mem,
        pdu_id=pdu_id,
        pdu_rack=pdu_rack,
        pdu_side=pdu_side,
        outlet_id=outlet_id,
        outlet_pdu=outlet_pdu,
        outlet_host=outlet_host,
        outlet_phase=outlet_phase,
        outlet_share=outlet_share,
        disk_id=disk_id,
        disk_host=disk_host,
        disk_device=disk_device,
        disk_model=disk_model,
        disk_serial=disk_serial,
        disk_base_temp=disk_base_temp,
        disk_poh0=disk_poh0,
        disk_realloc0=disk_realloc0.astype(np.float64),
        vm_id=vm_id,
        vm_host=vm_host,
        vm_vcpus=vm_vcpus,
        vm_util=vm_util,
        vm_mem=vm_mem,
        region_offset_h=region_offset_h,
        region_voltage=region_voltage,
    )
