"""Hypervisor profiling: daily usage profiles, profile classes and rack placement hints (SQL models).

- ``infra.hypervisor_profile``: per hypervisor and UTC hour of day, mean CPU utilisation and power
  over the history (memory is not in the fleet's metrics yet).
- ``infra.hypervisor_classes``: per hypervisor, the shape of its CPU profile and a class from it:
  ``flat`` (peak hour under 1.25x the daily mean), else ``daytime`` (peak between 08:00 and 19:59 UTC)
  or ``nighttime``; crossed with a load level (``low`` under 30 % mean CPU, ``high`` over 60 %).
  Classes by fixed rules, not a learned clustering: explainable, stable as hosts come and go.
- ``infra.placement_hints``: per rack and VM profile (a class's mean power shape scaled to 100 W on
  average), how much the rack's peak hourly power would rise if a VM of that profile were placed in it
  (``peak_rise_w``; 100 means the VM's peak lands on the rack's peak, less means they complement) and
  the rack's rank for that profile (1 = the best fit). No rack power budget is in the lake yet, so the
  hint ranks racks by complementarity, not against a breaker limit.

All three are rebuilt when samples land (a daily profile moves with every day; the tables are small).
"""

from __future__ import annotations

from shoal.models import Model

HYPERVISOR_PROFILE = "infra.hypervisor_profile"
HYPERVISOR_CLASSES = "infra.hypervisor_classes"
PLACEMENT_HINTS = "infra.placement_hints"

PROFILE_SQL = """
SELECT se.labels['host'] AS host, se.labels['rack'] AS rack,
       CAST((epoch_ms(sa.ts) // 3600000) % 24 AS INTEGER) AS hour,
       avg(sa.value) FILTER (WHERE se.metric = 'hypervisor_cpu_utilisation_ratio') AS cpu_ratio,
       avg(sa.value) FILTER (WHERE se.metric = 'hypervisor_power_watts') AS power_w,
       count(*) AS samples
FROM metrics.samples AS sa JOIN metrics.series AS se USING (series_id)
WHERE se.metric IN ('hypervisor_cpu_utilisation_ratio', 'hypervisor_power_watts')
GROUP BY ALL
"""

CLASSES_SQL = f"""
WITH shape AS (
    SELECT host, any_value(rack) AS rack, avg(cpu_ratio) AS mean_cpu, max(cpu_ratio) AS peak_cpu,
           arg_max(hour, cpu_ratio) AS peak_hour, avg(power_w) AS mean_power_w, max(power_w) AS peak_power_w
    FROM {HYPERVISOR_PROFILE} GROUP BY host)
SELECT host, rack, mean_cpu, peak_cpu, peak_hour, mean_power_w, peak_power_w,
       peak_cpu / nullif(mean_cpu, 0) AS peak_to_mean,
       CASE WHEN peak_cpu < 1.25 * mean_cpu THEN 'flat'
            WHEN peak_hour BETWEEN 8 AND 19 THEN 'daytime' ELSE 'nighttime' END
       || '/' || CASE WHEN mean_cpu < 0.3 THEN 'low' WHEN mean_cpu > 0.6 THEN 'high' ELSE 'medium' END
           AS profile_class
FROM shape
"""

HINTS_SQL = f"""
WITH rack_hour AS (
    SELECT rack, hour, sum(power_w) AS rack_w FROM {HYPERVISOR_PROFILE} GROUP BY rack, hour),
class_hour AS (
    SELECT c.profile_class, p.hour, avg(p.power_w) AS w
    FROM {HYPERVISOR_PROFILE} AS p JOIN {HYPERVISOR_CLASSES} AS c USING (host)
    GROUP BY c.profile_class, p.hour),
vm AS (  -- each class's daily power shape, scaled to a VM averaging 100 W
    SELECT profile_class, hour, 100 * w / avg(w) OVER (PARTITION BY profile_class) AS vm_w FROM class_hour),
fit AS (
    SELECT r.rack, v.profile_class AS vm_profile, max(r.rack_w) AS rack_peak_w,
           max(r.rack_w + v.vm_w) - max(r.rack_w) AS peak_rise_w
    FROM rack_hour AS r JOIN vm AS v USING (hour)
    GROUP BY r.rack, v.profile_class)
SELECT rack, vm_profile, rack_peak_w, peak_rise_w,
       rank() OVER (PARTITION BY vm_profile ORDER BY peak_rise_w, rack_peak_w, rack) AS fit_rank
FROM fit
"""


def models() -> list[Model]:
    return [
        Model(
            name=HYPERVISOR_PROFILE,
            sql=PROFILE_SQL,
            unique_key=("host", "hour"),
            upstream=("metrics.samples",),
            description="Per hypervisor and UTC hour of day: mean CPU utilisation and power",
            owner="infra",
        ),
        Model(
            name=HYPERVISOR_CLASSES,
            sql=CLASSES_SQL,
            unique_key=("host",),
            upstream=(HYPERVISOR_PROFILE,),
            description="Per hypervisor: daily CPU profile shape and its class (shape and load)",
            owner="infra",
        ),
        Model(
            name=PLACEMENT_HINTS,
            sql=HINTS_SQL,
            unique_key=("rack", "vm_profile"),
            upstream=(HYPERVISOR_PROFILE, HYPERVISOR_CLASSES),
            description="Per rack and VM profile: rise of the rack's peak hourly power if such a VM "
            "(100 W average) were placed there, and the rack's rank for that profile",
            owner="infra",
        ),
    ]
