"""Hypervisor profiling: daily usage profiles, a clustering of hosts by profile, rack headroom and
placement hints (SQL models the runner rebuilds as samples land; the tables are small).

- ``infra.hypervisor_profile``: per hypervisor and UTC hour of day, mean CPU utilisation, power and
  memory used / installed over the history.
- ``infra.hypervisor_classes``: per hypervisor, its cluster. Hosts are clustered by k-means on their
  normalised 24-h profiles (72 values: CPU / the host's mean CPU, memory used / installed, power /
  the host's mean power; so hardware generations and load levels do not split a workload type, while
  memory keeps its level, which is what sets memory-heavy hosts apart). k-means runs in SQL (a
  recursive CTE): k-means++ seeding from a fixed seed (md5 of host, k, run and step: no state, the
  same on every engine), ``RUNS`` restarts per k keeping the lowest inertia, ``ITERATIONS`` Lloyd
  steps, and k in ``K_RANGE`` chosen by the mean silhouette, or one cluster if no k reaches
  ``MIN_SILHOUETTE``; ``silhouette`` is the best k's score either way. The silhouette takes pairwise
  distances (quadratic in hosts): past ``SILHOUETTE_SAMPLE`` hosts it is the mean silhouette of a
  deterministic sample of that many (md5 of host and seed), each scored against the sampled hosts
  only, as scikit-learn's ``silhouette_score(sample_size=...)``; k-means itself sees every host.
  Clusters are numbered by their CPU peak hour and named by their shape: the cluster's mean CPU peak
  hour (UTC), its swing ((max - min) / mean) and its mean memory use. UTC is the right clock here:
  placement pairs loads in the same racks, in absolute time.
- ``infra.hypervisor_headroom``: per hypervisor, cores x (1 - p95 of its hourly CPU) and installed
  memory - p95 of its hourly memory used.
- ``infra.rack_headroom``: per rack, the power budget declared in the inventory (``infra.entities``:
  one PDU's three phases x rating x voltage x 0.8 derating; the A/B feeds are redundant) minus the
  p95 of the rack's hourly draw (the sum of its PDU outlets), and its hosts' CPU and memory headroom.
- ``infra.placement_hints``: per rack and VM profile (a cluster: its hosts' mean hourly CPU cores,
  memory and power per VM), how many such VMs the rack can take: by power (the budget against the
  rack's hourly profile plus n VMs' profile, hour by hour, so complementary loads fit more), by
  memory and by CPU (per host), the least of the three and which one limits; ``peak_rise_w`` is how
  much one VM raises the rack's peak hour. Rank 1 = the rack that fits the most, ties broken by the
  smaller peak rise (complementarity).
"""

from __future__ import annotations

from shoal.errors import ConfigError
from shoal.models import Model

HYPERVISOR_PROFILE = "infra.hypervisor_profile"
HYPERVISOR_CLASSES = "infra.hypervisor_classes"
HYPERVISOR_HEADROOM = "infra.hypervisor_headroom"
RACK_HEADROOM = "infra.rack_headroom"
PLACEMENT_HINTS = "infra.placement_hints"
ENTITIES = "infra.entities"  # the inventory (history.ENTITIES; not imported: it pulls in the simulator)

K_RANGE = (2, 6)  # inclusive: a fleet has a handful of workload types, not dozens
# below this mean silhouette the best k-clustering is not "reasonable structure" (Kaufman and
# Rousseeuw: 0.51-0.70 reasonable, 0.26-0.50 weak) and the fleet is one cluster: a fleet of one
# workload type then is not split by noise (daytime-only simulated fleets: best k scores 0.29)
MIN_SILHOUETTE = 0.5
RUNS = 6  # k-means++ restarts per k
ITERATIONS = 20  # Lloyd steps (well-separated profiles converge in under 10)
SEED = 16
DIMS = 72
# hosts the silhouette is taken over at most: 2,000 hosts are 4 million pairs of 72-value profiles
# (seconds in DuckDB), and a sample of that size puts the mean silhouette within about 0.01 of the
# whole fleet's (its standard error: the per-host values' spread, under 0.3, over sqrt(2,000))
SILHOUETTE_SAMPLE = 2000

_CPU = "hypervisor_cpu_utilisation_ratio"
_POWER = "hypervisor_power_watts"
_MEM_USED = "hypervisor_memory_used_bytes"
_MEM_TOTAL = "hypervisor_memory_total_bytes"

PROFILE_SQL = f"""
SELECT se.labels['host'] AS host, se.labels['rack'] AS rack,
       CAST((epoch_ms(sa.ts) // 3600000) % 24 AS INTEGER) AS hour,
       avg(sa.value) FILTER (WHERE se.metric = '{_CPU}') AS cpu_ratio,
       avg(sa.value) FILTER (WHERE se.metric = '{_POWER}') AS power_w,
       avg(sa.value) FILTER (WHERE se.metric = '{_MEM_USED}') AS mem_used_bytes,
       avg(sa.value) FILTER (WHERE se.metric = '{_MEM_TOTAL}') AS mem_total_bytes,
       avg(sa.value) FILTER (WHERE se.metric = '{_MEM_USED}')
           / avg(sa.value) FILTER (WHERE se.metric = '{_MEM_TOTAL}') AS mem_ratio,
       count(*) FILTER (WHERE se.metric = '{_CPU}') AS samples
FROM metrics.samples AS sa JOIN metrics.series AS se USING (series_id)
WHERE se.metric IN ('{_CPU}', '{_POWER}', '{_MEM_USED}', '{_MEM_TOTAL}')
GROUP BY ALL
"""


def _uniform(*parts: str) -> str:
    """A deterministic draw in (0, 1) from ``parts`` and the seed (md5: the same on any engine)."""
    key = " || ':' || ".join([f"'{SEED}'", *(f"CAST({p} AS VARCHAR)" for p in parts)])
    return f"((CAST(('0x' || left(md5({key}), 13)) AS BIGINT) + 0.5) / 4503599627370496.0)"


def silhouette_sample_sql(hosts: str, size: int) -> str:
    """The hosts of relation ``hosts`` (a ``host`` column) the silhouette is taken over: all of them up
    to ``size``, else the ``size`` with the smallest seeded draw (the same set whatever the row order)."""
    if size < 2:
        raise ConfigError(f"silhouette sample size must be >= 2 hosts, got {size}")
    draw = _uniform("host", "'silhouette'")
    return f"SELECT host FROM ({hosts}) ORDER BY {draw}, host LIMIT {size}"


def classes_sql(silhouette_sample: int = SILHOUETTE_SAMPLE) -> str:
    """``infra.hypervisor_classes`` with the silhouette over at most ``silhouette_sample`` hosts."""
    sample = silhouette_sample_sql("SELECT host FROM v", silhouette_sample)
    return _CLASSES_SQL.replace("__SILHOUETTE_HOSTS__", sample)


# k-means over the hosts' feature vectors ``v(host, x)``; every (k, run) pair runs side by side
_CLASSES_SQL = f"""
WITH RECURSIVE
m AS (SELECT host, max(cpu_ratio) AS mc, max(power_w) AS mp FROM {HYPERVISOR_PROFILE} GROUP BY host),
f AS (
    SELECT p.host, p.hour AS dim, p.cpu_ratio / nullif(m.mc, 0) AS x
    FROM {HYPERVISOR_PROFILE} AS p JOIN m USING (host)
    UNION ALL SELECT host, 24 + hour, mem_ratio FROM {HYPERVISOR_PROFILE}
    UNION ALL SELECT p.host, 48 + p.hour, p.power_w / nullif(m.mp, 0)
    FROM {HYPERVISOR_PROFILE} AS p JOIN m USING (host)),
-- hosts with all 24 hours (a metric the fleet lacks counts as 0 for every host alike)
v AS MATERIALIZED (
    SELECT host, list(coalesce(x, 0.0) ORDER BY dim) AS x FROM f GROUP BY host HAVING count(*) = {DIMS}),
runs AS (
    SELECT k, r FROM range(1, {K_RANGE[1] + 1}) AS a(k), range({RUNS}) AS b(r)
    WHERE k <= (SELECT count(*) FROM v)),
-- k-means++: the first centre uniformly, each next one with probability ~ squared distance to the
-- nearest centre so far (weighted sampling: the largest ln(u) / d2)
init(k, r, j, chosen) AS (
    SELECT k, r, 1, [arg_min(v.host, {_uniform("v.host", "k", "r", "0")})]
    FROM runs, v GROUP BY k, r
    UNION ALL
    SELECT k, r, j + 1, list_append(chosen, arg_max(host, ln({_uniform("host", "k", "r", "j")}) / d2))
    FROM (SELECT i.k, i.r, i.j, i.chosen, h.host, min(list_distance(h.x, c.x)) ** 2 AS d2
          FROM init AS i, v AS h, v AS c
          WHERE i.j < i.k AND list_contains(i.chosen, c.host)
          GROUP BY ALL)
    WHERE d2 > 0
    GROUP BY k, r, j, chosen),
seeds AS (
    SELECT i.k, i.r, u.c, v.x
    FROM (SELECT k, r, unnest(chosen) AS host, unnest(range(k)) AS c FROM init WHERE j = k) AS u
    JOIN init AS i ON i.k = u.k AND i.r = u.r AND i.j = i.k
    JOIN v USING (host)),
lloyd(k, r, it, c, x) AS (
    SELECT k, r, 0, c, x FROM seeds
    UNION ALL
    SELECT k, r, it, c, list(xm ORDER BY dim)
    FROM (SELECT k, r, it, c, dim, avg(xv) AS xm
          FROM (SELECT a.k, a.r, a.it + 1 AS it, a.c, unnest(range({DIMS})) AS dim, unnest(h.x) AS xv
                FROM (SELECT l.k, l.r, l.it, h.host, arg_min(l.c, list_distance(h.x, l.x)) AS c
                      FROM lloyd AS l, v AS h WHERE l.it < {ITERATIONS}
                      GROUP BY l.k, l.r, l.it, h.host) AS a
                JOIN v AS h USING (host))
          GROUP BY ALL)
    GROUP BY k, r, it, c),
centres AS (SELECT k, r, c, x FROM lloyd WHERE it = {ITERATIONS}),
assigned AS (
    SELECT k, r, host, arg_min(c, d) AS c, min(d) AS d
    FROM (SELECT ce.k, ce.r, ce.c, v.host, list_distance(v.x, ce.x) AS d FROM centres AS ce, v)
    GROUP BY k, r, host),
best AS (  -- per k, the run with the lowest inertia
    SELECT k, arg_min(r, inertia) AS r
    FROM (SELECT k, r, sum(d * d) + 1e-12 * r AS inertia FROM assigned GROUP BY k, r) GROUP BY k),
pick AS MATERIALIZED (SELECT a.* FROM assigned AS a JOIN best USING (k, r)),
sv AS MATERIALIZED (  -- the hosts the silhouette is taken over (SILHOUETTE_SAMPLE)
    SELECT v.* FROM v SEMI JOIN (__SILHOUETTE_HOSTS__) AS s USING (host)),
pairs AS MATERIALIZED (
    SELECT a.host AS h1, b.host AS h2, list_distance(a.x, b.x) AS d
    FROM sv AS a, sv AS b WHERE a.host <> b.host),
to_cluster AS (  -- per k and host, mean distance to each cluster's other members
    SELECT p1.k, pr.h1 AS host, p1.c AS own, p2.c, avg(pr.d) AS dist
    FROM pairs AS pr JOIN pick AS p1 ON p1.host = pr.h1 JOIN pick AS p2 ON p2.k = p1.k AND p2.host = pr.h2
    GROUP BY ALL),
sil AS (
    SELECT k, host,
           CASE WHEN a IS NULL OR b IS NULL THEN 0.0 ELSE (b - a) / greatest(a, b) END AS s
    FROM (SELECT k, host, max(dist) FILTER (WHERE c = own) AS a, min(dist) FILTER (WHERE c <> own) AS b
          FROM to_cluster GROUP BY k, host)),
chosen AS (  -- k = 1 (the mean) when no k in K_RANGE reaches MIN_SILHOUETTE
    SELECT CASE WHEN max(score) >= {MIN_SILHOUETTE} THEN arg_max(k, score - 1e-9 * k) ELSE 1 END AS k,
           max(score) AS silhouette
    FROM (SELECT k, avg(s) AS score FROM sil WHERE k >= {K_RANGE[0]} GROUP BY k)),
final AS (SELECT p.host, p.c, p.d, ch.k, ch.silhouette FROM pick AS p JOIN chosen AS ch USING (k)),
cshape AS (  -- each cluster's mean hourly CPU and memory
    SELECT fi.c, pr.hour, avg(pr.cpu_ratio) AS cpu, avg(pr.mem_ratio) AS mem
    FROM final AS fi JOIN {HYPERVISOR_PROFILE} AS pr USING (host) GROUP BY ALL),
named AS (
    SELECT c, peak_hour, swing, mem,
           CAST(row_number() OVER (ORDER BY peak_hour, swing, mem) AS INTEGER) AS cluster
    FROM (SELECT c, arg_max(hour, cpu) AS peak_hour, (max(cpu) - min(cpu)) / nullif(avg(cpu), 0) AS swing,
                 avg(mem) AS mem
          FROM cshape GROUP BY c)),
host_stats AS (
    SELECT host, any_value(rack) AS rack, avg(cpu_ratio) AS mean_cpu, max(cpu_ratio) AS peak_cpu,
           arg_max(hour, cpu_ratio) AS peak_hour, avg(mem_ratio) AS mean_mem_ratio,
           avg(power_w) AS mean_power_w, max(power_w) AS peak_power_w
    FROM {HYPERVISOR_PROFILE} GROUP BY host)
SELECT hs.host, hs.rack, n.cluster,
       'c' || n.cluster || ': CPU peak ' || lpad(CAST(n.peak_hour AS VARCHAR), 2, '0') || 'h UTC, swing '
           || CAST(round(100 * n.swing) AS INTEGER) || '%, memory '
           || CAST(round(100 * n.mem) AS INTEGER) || '%' AS profile_class,
       n.peak_hour AS cluster_peak_hour, n.swing AS cluster_swing, n.mem AS cluster_mem_ratio,
       fi.d AS distance, fi.k AS clusters, fi.silhouette,
       hs.mean_cpu, hs.peak_cpu, hs.peak_hour, hs.mean_mem_ratio, hs.mean_power_w, hs.peak_power_w
FROM final AS fi JOIN named AS n USING (c) JOIN host_stats AS hs USING (host)
"""
CLASSES_SQL = classes_sql()

# hourly means per clock hour of the history (not per hour of day): what the p95s are taken over
HOST_HEADROOM_SQL = f"""
WITH h AS (
    SELECT se.labels['host'] AS host, any_value(se.labels['rack']) AS rack,
           epoch_ms(sa.ts) // 3600000 AS hr,
           avg(sa.value) FILTER (WHERE se.metric = '{_CPU}') AS cpu,
           avg(sa.value) FILTER (WHERE se.metric = '{_MEM_USED}') AS mem_used,
           max(sa.value) FILTER (WHERE se.metric = '{_MEM_TOTAL}') AS mem_total
    FROM metrics.samples AS sa JOIN metrics.series AS se USING (series_id)
    WHERE se.metric IN ('{_CPU}', '{_MEM_USED}', '{_MEM_TOTAL}')
    GROUP BY se.labels['host'], hr),
q AS (
    SELECT host, any_value(rack) AS rack, quantile_cont(cpu, 0.95) AS p95_cpu,
           quantile_cont(mem_used, 0.95) AS p95_mem_used_bytes, max(mem_total) AS mem_total_bytes,
           count(*) AS hours
    FROM h GROUP BY host)
SELECT q.host, q.rack, e.cpu_cores, e.vms, q.p95_cpu, e.cpu_cores * (1 - q.p95_cpu) AS cpu_headroom_cores,
       q.mem_total_bytes, q.p95_mem_used_bytes,
       q.mem_total_bytes - q.p95_mem_used_bytes AS mem_headroom_bytes,
       q.hours
FROM q LEFT JOIN {ENTITIES} AS e ON e.entity = q.host
"""

RACK_HEADROOM_SQL = f"""
WITH t AS (  -- the rack's draw: the sum of its PDU outlets (both feeds) at each sample time
    SELECT se.labels['rack'] AS rack, sa.ts, sum(sa.value) AS w
    FROM metrics.samples AS sa JOIN metrics.series AS se USING (series_id)
    WHERE se.metric = 'pdu_outlet_power_watts' GROUP BY ALL),
h AS (SELECT rack, epoch_ms(ts) // 3600000 AS hr, avg(w) AS w FROM t GROUP BY ALL),
p AS (SELECT rack, quantile_cont(w, 0.95) AS p95_w, max(w) AS peak_hour_w, count(*) AS hours
      FROM h GROUP BY rack),
hosts AS (
    SELECT rack, count(*) AS hosts, sum(cpu_headroom_cores) AS cpu_headroom_cores,
           sum(mem_headroom_bytes) AS mem_headroom_bytes, sum(mem_total_bytes) AS mem_total_bytes
    FROM {HYPERVISOR_HEADROOM} GROUP BY rack)
SELECT p.rack, e.power_budget_w, p.p95_w, p.peak_hour_w, e.power_budget_w - p.p95_w AS power_headroom_w,
       hosts.hosts, hosts.cpu_headroom_cores, hosts.mem_headroom_bytes, hosts.mem_total_bytes, p.hours
FROM p LEFT JOIN {ENTITIES} AS e ON e.entity = p.rack LEFT JOIN hosts ON hosts.rack = p.rack
"""

HINTS_SQL = f"""
WITH vm AS (  -- a VM of each cluster, hour by hour: its hosts' means divided by their VM counts
    SELECT c.cluster, c.profile_class AS vm_profile, p.hour,
           avg(p.power_w / e.vms) AS vm_w, avg(p.mem_used_bytes / e.vms) AS vm_mem,
           avg(p.cpu_ratio * e.cpu_cores / e.vms) AS vm_cores
    FROM {HYPERVISOR_PROFILE} AS p JOIN {HYPERVISOR_CLASSES} AS c USING (host)
    JOIN {ENTITIES} AS e ON e.entity = p.host
    WHERE e.vms > 0
    GROUP BY c.cluster, c.profile_class, p.hour),
vm_peak AS (SELECT cluster, max(vm_mem) AS vm_mem, max(vm_cores) AS vm_cores FROM vm GROUP BY cluster),
rack_hour AS (SELECT rack, hour, sum(power_w) AS rack_w FROM {HYPERVISOR_PROFILE} GROUP BY rack, hour),
rack_top AS (SELECT rack, max(rack_w) AS rack_peak_w FROM rack_hour GROUP BY rack),
power_fit AS (
    -- n VMs fit when, at every hour, the rack's profile plus n VMs stays within the headroom above
    -- the rack's peak hour: n <= (headroom + peak - rack_w(h)) / vm_w(h)
    SELECT r.rack, v.cluster, v.vm_profile, t.rack_peak_w,
           max(r.rack_w + v.vm_w) - t.rack_peak_w AS peak_rise_w,
           greatest(min(floor((rh.power_headroom_w + t.rack_peak_w - r.rack_w) / v.vm_w)), 0) AS vms_by_power
    FROM rack_hour AS r JOIN rack_top AS t USING (rack) JOIN vm AS v USING (hour)
    JOIN {RACK_HEADROOM} AS rh USING (rack)
    GROUP BY r.rack, v.cluster, v.vm_profile, t.rack_peak_w, rh.power_headroom_w),
host_fit AS (  -- memory and cores do not pool across hosts: each host takes what fits in it
    SELECT h.rack, vp.cluster,
           sum(greatest(floor(h.mem_headroom_bytes / vp.vm_mem), 0)) AS vms_by_memory,
           sum(greatest(floor(h.cpu_headroom_cores / vp.vm_cores), 0)) AS vms_by_cpu
    FROM {HYPERVISOR_HEADROOM} AS h, vm_peak AS vp GROUP BY h.rack, vp.cluster),
fit AS (
    SELECT pf.*, CAST(hf.vms_by_memory AS BIGINT) AS vms_by_memory,
           CAST(hf.vms_by_cpu AS BIGINT) AS vms_by_cpu,
           CAST(pf.vms_by_power AS BIGINT) AS vms_power
    FROM power_fit AS pf JOIN host_fit AS hf USING (rack, cluster))
SELECT rack, cluster, vm_profile, rack_peak_w, peak_rise_w, vms_power AS vms_by_power, vms_by_memory,
       vms_by_cpu, least(vms_power, vms_by_memory, vms_by_cpu) AS vms_fit,
       CASE least(vms_power, vms_by_memory, vms_by_cpu) WHEN vms_power THEN 'power'
            WHEN vms_by_memory THEN 'memory' ELSE 'cpu' END AS limited_by,
       CAST(rank() OVER (PARTITION BY cluster
                         ORDER BY least(vms_power, vms_by_memory, vms_by_cpu) DESC, peak_rise_w, rack)
            AS INTEGER) AS fit_rank
FROM fit
"""


def models() -> list[Model]:
    return [
        Model(
            name=HYPERVISOR_PROFILE,
            sql=PROFILE_SQL,
            unique_key=("host", "hour"),
            upstream=("metrics.samples",),
            description="Per hypervisor and UTC hour of day: mean CPU utilisation, power and memory",
            owner="infra",
        ),
        Model(
            name=HYPERVISOR_CLASSES,
            sql=CLASSES_SQL,
            unique_key=("host",),
            upstream=(HYPERVISOR_PROFILE,),
            description="Per hypervisor: its cluster (k-means on normalised 24-h CPU, memory and power "
            "profiles, k by silhouette), named by the cluster's CPU peak hour, swing and memory use",
            owner="infra",
        ),
        Model(
            name=HYPERVISOR_HEADROOM,
            sql=HOST_HEADROOM_SQL,
            unique_key=("host",),
            upstream=("metrics.samples", ENTITIES),
            description="Per hypervisor: CPU cores and memory left above the p95 of its hourly use",
            owner="infra",
        ),
        Model(
            name=RACK_HEADROOM,
            sql=RACK_HEADROOM_SQL,
            unique_key=("rack",),
            upstream=("metrics.samples", ENTITIES, HYPERVISOR_HEADROOM),
            description="Per rack: power budget minus the p95 of its hourly draw, and its hosts' "
            "CPU and memory headroom",
            owner="infra",
        ),
        Model(
            name=PLACEMENT_HINTS,
            sql=HINTS_SQL,
            unique_key=("rack", "cluster"),
            upstream=(HYPERVISOR_PROFILE, HYPERVISOR_CLASSES, HYPERVISOR_HEADROOM, RACK_HEADROOM, ENTITIES),
            description="Per rack and VM profile (cluster): how many such VMs fit by power, memory and "
            "CPU headroom, which limits, the rise of the rack's peak hour per VM, and the rack's rank",
            owner="infra",
        ),
    ]
