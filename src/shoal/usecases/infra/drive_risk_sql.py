"""The drive-risk trees as data, scored in SQL: what lets the runner keep drive risk fresh.

``tree_table`` flattens a trained LightGBM booster into rows (one per node), stored in the lake as
``infra.drive_risk_trees`` by ``shoal infra drive-risk``. ``score_sql`` walks every tree for every
drive with a recursive CTE over a long-form feature relation ``(entity, feature, value)``, following
LightGBM's own decision rules (missing values, zero-as-missing, categorical sets), and returns per drive
the raw score, the probability and the attributions: each step from a node to its child adds
``child value - node value`` to the node's split feature (Saabas' path attribution: they sum, with the
trees' root values, to the raw score exactly). A unit test holds the SQL equal to ``booster.predict``.

``infra.fleet_drive_risk`` (``fleet_models``) applies the stored trees to the fleet's SMART metrics as
they land: reallocated (SMART 5) and pending (SMART 197) sectors, their sum, power-on hours, and the
growth over the last 720 and 168 hours of samples; attributes the fleet does not report (and the
model-relative ranks: fleet models are not Backblaze's) are missing, as the trees allow.
"""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa

from shoal.lake import Lake
from shoal.models import Model

TREES = "infra.drive_risk_trees"
FLEET_DRIVE_RISK = "infra.fleet_drive_risk"

TREE_SCHEMA = pa.schema(
    [
        pa.field("tree", pa.int32(), nullable=False),
        pa.field("node", pa.int32(), nullable=False),  # internal: split index; leaf: -(leaf index + 1)
        pa.field("is_leaf", pa.bool_(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),  # internal value, or leaf value
        pa.field("feature", pa.string()),
        pa.field("threshold", pa.float64()),
        pa.field("categories", pa.list_(pa.int32())),  # categorical split: the left categories
        pa.field("default_left", pa.bool_()),
        pa.field("missing_type", pa.string()),
        pa.field("left", pa.int32()),
        pa.field("right", pa.int32()),
    ]
)


def _node_id(node: dict[str, Any]) -> int:
    return int(node["split_index"]) if "split_index" in node else -(int(node["leaf_index"]) + 1)


def tree_table(booster: Any) -> pa.Table:
    """One row per node of every tree of a LightGBM binary booster (``dump_model``)."""
    dump = booster.dump_model()
    names = dump["feature_names"]
    rows: list[dict[str, Any]] = []
    for info in dump["tree_info"]:
        stack = [info["tree_structure"]]
        while stack:
            node = stack.pop()
            if "leaf_value" in node:
                rows.append(
                    {
                        "tree": info["tree_index"],
                        "node": _node_id(node),
                        "is_leaf": True,
                        "value": float(node["leaf_value"]),
                    }
                )
                continue
            categorical = node["decision_type"] == "=="
            rows.append(
                {
                    "tree": info["tree_index"],
                    "node": _node_id(node),
                    "is_leaf": False,
                    "value": float(node["internal_value"]),
                    "feature": names[node["split_feature"]],
                    "threshold": None if categorical else float(node["threshold"]),
                    "categories": [int(c) for c in str(node["threshold"]).split("||")]
                    if categorical
                    else None,
                    "default_left": bool(node["default_left"]),
                    "missing_type": node["missing_type"],
                    "left": _node_id(node["left_child"]),
                    "right": _node_id(node["right_child"]),
                }
            )
            stack += [node["left_child"], node["right_child"]]
    return pa.Table.from_pylist(rows, schema=TREE_SCHEMA)


# LightGBM's decision (tree.h NumericalDecision / CategoricalDecision) on f.value:
# numerical: NaN becomes 0 unless missing_type = 'NaN'; a missing value (NaN for 'NaN', 0 for 'Zero')
# follows default_left; otherwise value <= threshold goes left. Categorical: NaN goes right for 'NaN'
# and is category 0 otherwise; a negative category goes right; a category in the set goes left.
_GO_LEFT = """CASE
    WHEN n.categories IS NOT NULL THEN CASE
        WHEN f.value IS NULL OR isnan(f.value) THEN
            CASE WHEN n.missing_type = 'NaN' THEN false ELSE list_contains(n.categories, 0) END
        WHEN f.value < 0 THEN false
        ELSE list_contains(n.categories, CAST(trunc(f.value) AS INTEGER)) END
    WHEN (f.value IS NULL OR isnan(f.value)) AND n.missing_type = 'NaN' THEN n.default_left
    WHEN n.missing_type = 'Zero' AND coalesce(nullif(f.value, 'NaN'::DOUBLE), 0) = 0 THEN n.default_left
    ELSE coalesce(nullif(f.value, 'NaN'::DOUBLE), 0) <= n.threshold END"""


def score_sql(features: str, trees: str = TREES, top: int = 3) -> str:
    """``features`` (entity, feature, value) → (entity, raw_score, p_fail_30d, drivers)."""
    return f"""
        WITH RECURSIVE ents AS (SELECT DISTINCT entity FROM ({features})),
        feat AS (SELECT entity, feature, value FROM ({features})),
        walk(entity, tree, node, feature, delta, depth) AS (
            SELECT e.entity, r.tree, r.root, NULL::VARCHAR, 0.0::DOUBLE, 0
            FROM ents AS e CROSS JOIN (  -- the root: split 0, or leaf 0 (-1) in a one-leaf tree
                SELECT tree, CASE WHEN bool_or(node = 0 AND NOT is_leaf) THEN 0 ELSE -1 END AS root
                FROM {trees} GROUP BY tree) AS r
            UNION ALL
            SELECT w.entity, w.tree, c.node, n.feature, c.value - n.value, w.depth + 1
            FROM walk AS w
            JOIN {trees} AS n ON n.tree = w.tree AND n.node = w.node AND NOT n.is_leaf
            LEFT JOIN feat AS f ON f.entity = w.entity AND f.feature = n.feature
            JOIN {trees} AS c ON c.tree = n.tree
                AND c.node = CASE WHEN {_GO_LEFT} THEN n.left ELSE n.right END
        ),
        leaves AS (
            SELECT w.entity, sum(t.value) AS raw_score
            FROM walk AS w JOIN {trees} AS t ON t.tree = w.tree AND t.node = w.node AND t.is_leaf
            GROUP BY w.entity),
        contrib AS (
            SELECT entity, feature, sum(delta) AS contribution
            FROM walk WHERE feature IS NOT NULL GROUP BY entity, feature),
        top_k AS (
            SELECT c.entity, c.feature, c.contribution, f.value,
                   row_number() OVER (PARTITION BY c.entity ORDER BY c.contribution DESC, c.feature) AS k
            FROM contrib AS c LEFT JOIN feat AS f USING (entity, feature)
            WHERE c.contribution > 0)
        SELECT l.entity, l.raw_score, 1 / (1 + exp(-l.raw_score)) AS p_fail_30d,
               coalesce(string_agg(t.feature || '=' || coalesce(CAST(round(t.value, 2) AS VARCHAR), 'missing')
                   || ' (' || printf('%+.2f', t.contribution) || ')', '; ' ORDER BY t.k), '') AS drivers
        FROM leaves AS l LEFT JOIN top_k AS t ON t.entity = l.entity AND t.k <= {top}
        GROUP BY l.entity, l.raw_score
    """


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


_HOURS = 720
_WEEK = 168
FLEET_FEATURES_SQL = f"""
WITH disk AS (
    SELECT se.labels['host'] || '/' || se.labels['device'] AS entity, se.metric, sa.ts, sa.value
    FROM metrics.samples AS sa JOIN metrics.series AS se USING (series_id)
    WHERE se.metric IN ('smart_reallocated_sectors', 'smart_pending_sectors', 'smart_power_on_hours')),
latest AS (
    SELECT entity, metric, arg_max(value, ts) AS value, max(ts) AS ts FROM disk GROUP BY entity, metric),
earlier AS (  -- the value {_HOURS} h (and {_WEEK} h) before the latest sample, or the earliest one
    SELECT d.entity, d.metric, arg_min(d.value, d.ts) AS value,
           arg_min(d.value, d.ts) FILTER (WHERE d.ts >= l.ts - INTERVAL {_WEEK} HOUR) AS week_value
    FROM disk AS d JOIN latest AS l USING (entity, metric)
    WHERE d.ts >= l.ts - INTERVAL {_HOURS} HOUR GROUP BY d.entity, d.metric),
named AS (
    SELECT l.entity, CASE l.metric WHEN 'smart_reallocated_sectors' THEN 'smart_5'
                                   WHEN 'smart_pending_sectors' THEN 'smart_197'
                                   ELSE 'power_on_hours' END AS feature,
           l.value, l.value - e.value AS growth, l.value - e.week_value AS growth1w
    FROM latest AS l JOIN earlier AS e USING (entity, metric))
SELECT entity, feature, value FROM named
UNION ALL
SELECT entity, feature || '_growth', growth FROM named WHERE feature <> 'power_on_hours'
UNION ALL
SELECT entity, feature || '_growth1w', growth1w FROM named WHERE feature <> 'power_on_hours'
UNION ALL  -- the fleet reports no offline-uncorrectable count (SMART 198): reallocated + pending
SELECT entity, 'bad_sectors', sum(value) FROM named WHERE feature <> 'power_on_hours' GROUP BY entity
"""


def fleet_models() -> list[Model]:
    return [
        Model(
            name=FLEET_DRIVE_RISK,
            sql=score_sql(FLEET_FEATURES_SQL),
            unique_key=("entity",),
            upstream=("metrics.samples", TREES),
            description="P(failure within 30 days of power-on) per fleet disk from its latest SMART "
            "samples and the trees in infra.drive_risk_trees, with the attributes that raised it",
            owner="infra",
        )
    ]


def write_trees(lake: Lake, booster: Any) -> int:
    """Replace ``infra.drive_risk_trees`` with ``booster``'s nodes; returns the table version."""
    table = lake.create_table(
        TREES,
        TREE_SCHEMA,
        description="The drive-risk model's LightGBM trees, one row per node (scored in SQL by "
        "infra.fleet_drive_risk)",
        source="shoal.usecases.infra.drive_risk",
    )
    return table.overwrite(tree_table(booster))


def models() -> list[Model]:
    """For ``models:`` in shoal.yaml, once ``shoal infra drive-risk`` has written the trees."""
    return fleet_models()
