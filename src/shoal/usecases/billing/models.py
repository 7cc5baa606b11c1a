"""Billing models: revenue "from months to minutes", exact to the cent.

All SQL is DuckDB over ``billing.usage_events`` (columns = the proto field names
of ``shoal.billing.v1.UsageEvent`` plus the ingest engine's ``_kafka_*``
metadata). Money columns are ``DECIMAL(18,6)`` dollars (exact micro-dollars),
invoice amounts ``DECIMAL(18,2)``; no DOUBLE anywhere. Arithmetic on money is
done on integer micro-units and converted exactly at the end.

Billing rules (the reference calculator in ``reference.py`` implements the same
rules independently, in Python ``Decimal``):

1. Dedupe: events are unique by ``event_id`` (re-sent duplicates count once).
2. Only ``EVENT_TYPE_USAGE`` events are charged. Uncapped charge of a usage
   event = ``hourly_price × quantity``, rounded half-up to a micro-dollar
   (prices and quantities are non-negative integers of micro-units).
3. Caps: per resource and UTC calendar month (``billing_month``), usage events
   are ordered by (``billing_hour``, ``event_id``). With ``before`` = the sum of
   the *uncapped* charges of the earlier events of that resource-month, an
   event is charged ``clamp(monthly_cap - before, 0, uncapped)``: hours accrue
   until the running total reaches the cap, the crossing hour pays only the
   remainder, later hours pay 0. If a resize changes the cap mid-month, each
   hour is judged against its own event's cap (so an upsize keeps accruing up to
   the new cap). ``monthly_cap`` NULL = uncapped.
4. Late events: a late usage event can move the cap-crossing hour of its
   (billing_month, resource_id), so ``charges_hourly`` is incremental by
   (billing_month, resource_id) and restates each touched resource-month from
   its earliest changed hour on (``restate_from``: earlier hours cannot
   change); only rows whose values changed are written. The uncapped total of
   the earlier hours comes from ``invoice_lines`` (a state model, see
   ADR 0007). ``revenue_hourly`` and ``invoice_lines`` are additive:
   kept as sums of charges_hourly's change feed (restated rows arrive as pre-
   and post-images); the daily rollups are incremental by billing_date /
   (billing_month, user_id).
5. Rounding to cents happens only on invoices: each invoice line (resource,
   plan, month) is rounded half-even to the cent; the invoice total is the sum
   of the rounded lines. Revenue rollups stay exact (DECIMAL(18,6)).
6. Run rate = revenue of the latest complete hour × 24 × 365. The latest
   complete hour is the hour before the newest ``billing_hour`` seen (the
   newest one is still being metered).
7. Compute-spend buckets for ``storage_run_rate_by_compute_spend`` use the
   user's month-to-date ``vm`` charges through the as-of hour (same month):
   ``$0``, ``<$50``, ``$50-500``, ``$500-5k``, ``>$5k`` (lower bounds inclusive).
   That model, like run rate, reports USD only.
"""

from __future__ import annotations

from shoal.models import Model
from shoal.usecases.billing.charges import charges_incremental, charges_scope

SOURCE = "billing.usage_events"
HOURS_PER_YEAR = 24 * 365
COMPUTE_PRODUCTS = ("vm",)
STORAGE_PRODUCT = "volume"
SPEND_BUCKETS = ("$0", "<$50", "$50-500", "$500-5k", ">$5k")


def _money(micros_sql: str) -> str:
    """Exact integer micro-units -> DECIMAL(18,6) units (no division: stays DECIMAL)."""
    return f"CAST(CAST({micros_sql} AS DECIMAL(18,0)) * CAST(0.000001 AS DECIMAL(7,6)) AS DECIMAL(18,6))"


def _utc_date(ts_sql: str) -> str:
    # epoch_us -> naive UTC timestamp: independent of the session's TimeZone setting
    return f"CAST(make_timestamp(epoch_us({ts_sql})) AS DATE)"


_DEDUPE = "QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY _kafka_partition, _kafka_offset) = 1"


def _charges_sql(events_cte: str, prior_micros: str = "0", prior_join: str = "") -> str:
    """The charges query over an ``events`` CTE (deduped usage events); ``prior_micros`` is the
    uncapped total of earlier hours not in ``events`` (incremental refreshes)."""
    return f"""
WITH {events_cte},
usage AS (
    SELECT
        event_id, resource_id, user_id, team_id, region, product, plan, unit, currency,
        billing_month, billing_hour, quantity_micros, hourly_price_micros, monthly_cap_micros,
        CAST((CAST(hourly_price_micros AS HUGEINT) * quantity_micros + 500000) // 1000000 AS BIGINT)
            AS uncapped_micros
    FROM events
    WHERE event_type = 'EVENT_TYPE_USAGE'
),
running AS (
    SELECT
        usage.*,
        {prior_micros} + coalesce(sum(uncapped_micros) OVER (
            PARTITION BY resource_id, billing_month
            ORDER BY billing_hour, event_id
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ), 0) AS before_micros
    FROM usage{prior_join}
),
charged AS (
    SELECT
        *,
        CASE
            WHEN monthly_cap_micros IS NULL THEN uncapped_micros
            ELSE greatest(0, least(uncapped_micros, monthly_cap_micros - before_micros))
        END AS charge_micros
    FROM running
)
SELECT
    billing_month,
    {_utc_date("billing_hour")} AS billing_date,
    billing_hour,
    event_id,
    resource_id,
    user_id,
    team_id,
    region,
    product,
    plan,
    unit,
    currency,
    {_money("quantity_micros")} AS quantity,
    {_money("hourly_price_micros")} AS hourly_price,
    {_money("monthly_cap_micros")} AS monthly_cap,
    {_money("uncapped_micros")} AS uncapped_charge,
    {_money("charge_micros")} AS charge
FROM charged
"""


CHARGES_HOURLY_SQL = _charges_sql(f"events AS (SELECT * FROM {SOURCE} {_DEDUPE})")


def _micros(dollars_sql: str) -> str:
    """DECIMAL(18,6) units -> exact integer micro-units (NULL stays NULL)."""
    return f"CAST({dollars_sql} * 1000000 AS BIGINT)"


_CHARGES = "billing.charges_hourly"
INVOICE_LINES = "billing.invoice_lines"
_EVENT_COLUMNS = (
    "event_id, event_type, resource_id, user_id, team_id, region, product, plan, unit, currency, "
    "billing_month, billing_hour, quantity_micros, hourly_price_micros, monthly_cap_micros"
)

# Incremental refresh of the touched (billing_month, resource_id) slices from their earliest changed
# hour (``__shoal_touched.__shoal_from``, NULL = the whole slice): the work is proportional to what
# changed, not to the month. The events of a slice from that hour on are its charged rows from there
# (``__shoal_old``, the model's own rows in scope) plus the new usage rows (``__shoal_changes``, the
# change feed of usage_events) that are not already charged; the uncapped total of the hours before
# it is the slice's month-to-date total (its lines in ``billing.invoice_lines``, which the runner keeps
# at this model's version) minus the restated rows' share. A duplicate shares its original's
# resource and hour, so it is in the same scope and the dedupe is exact.
CHARGES_HOURLY_INCREMENTAL_SQL = _charges_sql(
    f"""scope AS (SELECT billing_month, resource_id, __shoal_from FROM __shoal_touched),
fresh AS (
    SELECT * FROM __shoal_changes
    WHERE _change_type IN ('insert', 'update_postimage')
    {_DEDUPE}
),
events AS (
    SELECT
        event_id, 'EVENT_TYPE_USAGE' AS event_type, resource_id, user_id, team_id, region, product,
        plan, unit, currency, billing_month, billing_hour, {_micros("quantity")} AS quantity_micros,
        {_micros("hourly_price")} AS hourly_price_micros, {_micros("monthly_cap")} AS monthly_cap_micros
    FROM __shoal_old
    UNION ALL
    SELECT {_EVENT_COLUMNS}
    FROM fresh AS f
    WHERE NOT EXISTS (SELECT 1 FROM __shoal_old AS o WHERE o.event_id = f.event_id)
),
restated AS (
    SELECT billing_month, resource_id, sum({_micros("uncapped_charge")}) AS micros
    FROM __shoal_old
    GROUP BY billing_month, resource_id
),
prior AS (
    SELECT
        s.billing_month,
        s.resource_id,
        coalesce(m.micros, 0) - coalesce(r.micros, 0) AS prior_micros
    FROM scope AS s
    LEFT JOIN (
        SELECT l.billing_month, l.resource_id, sum({_micros("l.uncapped_amount")}) AS micros
        FROM {INVOICE_LINES} AS l
        JOIN scope USING (billing_month, resource_id)
        GROUP BY l.billing_month, l.resource_id
    ) AS m USING (billing_month, resource_id)
    LEFT JOIN restated AS r USING (billing_month, resource_id)
)""",
    prior_micros="coalesce(prior.prior_micros, 0)",
    prior_join=" LEFT JOIN prior USING (billing_month, resource_id)",
)

_LINE_KEY = "billing_month, user_id, team_id, resource_id, product, plan, region, currency"

# Month-to-date invoice lines (resource and plan, with the user's attributes): sums of charges,
# kept additively from charges_hourly's change feed. The state charges_hourly reads each
# resource's month-to-date uncapped total from, and what invoice_preview rounds.
INVOICE_LINES_SQL = f"""
SELECT
    {_LINE_KEY},
    count(*) AS hours,
    CAST(sum(quantity) AS DECIMAL(18,6)) AS quantity,
    CAST(sum(uncapped_charge) AS DECIMAL(18,6)) AS uncapped_amount,
    CAST(sum(charge) AS DECIMAL(18,6)) AS amount
FROM {_CHARGES}
GROUP BY {_LINE_KEY}
"""

# Additive maintenance (see Model.additive_sql): the signed sums of charges_hourly's changed rows.
INVOICE_LINES_ADDITIVE_SQL = f"""
SELECT
    {_LINE_KEY},
    CAST(sum(__shoal_sign) AS BIGINT) AS hours,
    CAST(sum(__shoal_sign * quantity) AS DECIMAL(18,6)) AS quantity,
    CAST(sum(__shoal_sign * uncapped_charge) AS DECIMAL(18,6)) AS uncapped_amount,
    CAST(sum(__shoal_sign * charge) AS DECIMAL(18,6)) AS amount
FROM __shoal_delta
GROUP BY {_LINE_KEY}
"""

REVENUE_HOURLY_SQL = f"""
SELECT
    billing_hour,
    billing_date,
    product,
    plan,
    region,
    currency,
    CAST(sum(charge) AS DECIMAL(18,6)) AS revenue,
    CAST(sum(uncapped_charge) AS DECIMAL(18,6)) AS uncapped_revenue,
    CAST(sum(quantity) AS DECIMAL(18,6)) AS quantity,
    -- charged (deduped) usage events; distinct users and resources are in the daily models:
    -- distinct counts were most of this query's cost, and it sits on the freshness path
    count(*) AS usage_events
FROM {_CHARGES}
GROUP BY billing_hour, billing_date, product, plan, region, currency
"""

REVENUE_HOURLY_ADDITIVE_SQL = """
SELECT
    billing_hour,
    billing_date,
    product,
    plan,
    region,
    currency,
    CAST(sum(__shoal_sign * charge) AS DECIMAL(18,6)) AS revenue,
    CAST(sum(__shoal_sign * uncapped_charge) AS DECIMAL(18,6)) AS uncapped_revenue,
    CAST(sum(__shoal_sign * quantity) AS DECIMAL(18,6)) AS quantity,
    CAST(sum(__shoal_sign) AS BIGINT) AS usage_events
FROM __shoal_delta
GROUP BY billing_hour, billing_date, product, plan, region, currency
"""

REVENUE_DAILY_SQL = f"""
SELECT
    billing_date,
    product,
    plan,
    region,
    currency,
    CAST(sum(charge) AS DECIMAL(18,6)) AS revenue,
    CAST(sum(uncapped_charge) AS DECIMAL(18,6)) AS uncapped_revenue,
    CAST(sum(quantity) AS DECIMAL(18,6)) AS quantity,
    count(DISTINCT resource_id) AS resources,
    count(DISTINCT user_id) AS users
FROM {_CHARGES}
GROUP BY billing_date, product, plan, region, currency
"""

BILLABLE_USERS_SQL = f"""
SELECT
    billing_date,
    product,
    count(DISTINCT user_id) FILTER (WHERE charge > 0) AS billable_users,
    count(DISTINCT user_id) AS users
FROM {_CHARGES}
GROUP BY billing_date, product
"""

RUN_RATE_SQL = f"""
WITH latest AS (
    SELECT max(billing_hour) - INTERVAL 1 HOUR AS as_of_hour FROM billing.revenue_hourly
),
products AS (
    SELECT DISTINCT product, currency FROM billing.revenue_hourly
)
SELECT
    p.product,
    p.currency,
    l.as_of_hour,
    CAST(coalesce(sum(r.revenue), 0) AS DECIMAL(18,6)) AS hourly_revenue,
    CAST(coalesce(sum(r.revenue), 0) * {HOURS_PER_YEAR} AS DECIMAL(18,6)) AS run_rate
FROM products AS p
CROSS JOIN latest AS l
LEFT JOIN billing.revenue_hourly AS r
    ON r.product = p.product AND r.currency = p.currency AND r.billing_hour = l.as_of_hour
GROUP BY p.product, p.currency, l.as_of_hour
"""

_COMPUTE_LIST = ", ".join(f"'{p}'" for p in COMPUTE_PRODUCTS)
_BUCKET_VALUES = ", ".join(f"({i}, '{b}')" for i, b in enumerate(SPEND_BUCKETS, start=1))

STORAGE_RUN_RATE_SQL = f"""
WITH as_of AS (
    -- revenue_hourly has exactly the hours charges_hourly has, in far fewer rows
    SELECT
        max(billing_hour) - INTERVAL 1 HOUR AS as_of_hour,
        strftime(make_timestamp(epoch_us(max(billing_hour) - INTERVAL 1 HOUR)), '%Y-%m') AS as_of_month
    FROM billing.revenue_hourly
),
compute AS (
    -- month-to-date through the as-of hour: the month's invoice lines less the hours after it
    -- (the newest, still metered), not a sum over the month's charges
    SELECT user_id, sum(amount) AS mtd_compute
    FROM (
        SELECT l.user_id, l.amount
        FROM {INVOICE_LINES} AS l, as_of AS a
        WHERE l.product IN ({_COMPUTE_LIST}) AND l.currency = 'USD' AND l.billing_month = a.as_of_month
        UNION ALL
        SELECT c.user_id, -c.charge
        FROM {_CHARGES} AS c, as_of AS a
        WHERE c.product IN ({_COMPUTE_LIST}) AND c.currency = 'USD'
            AND c.billing_month = a.as_of_month AND c.billing_hour > a.as_of_hour
    )
    GROUP BY user_id
),
storage AS (
    SELECT c.user_id, sum(c.charge) AS storage_hourly
    FROM {_CHARGES} AS c, as_of AS a
    WHERE c.product = '{STORAGE_PRODUCT}' AND c.currency = 'USD' AND c.billing_hour = a.as_of_hour
    GROUP BY c.user_id
),
bucketed AS (
    SELECT
        s.user_id,
        s.storage_hourly,
        CASE
            WHEN coalesce(k.mtd_compute, 0) = 0 THEN '$0'
            WHEN k.mtd_compute < 50 THEN '<$50'
            WHEN k.mtd_compute < 500 THEN '$50-500'
            WHEN k.mtd_compute < 5000 THEN '$500-5k'
            ELSE '>$5k'
        END AS bucket
    FROM storage AS s
    LEFT JOIN compute AS k USING (user_id)
),
buckets(bucket_order, bucket) AS (VALUES {_BUCKET_VALUES})
SELECT
    b.bucket_order,
    b.bucket AS compute_spend_bucket,
    a.as_of_hour,
    count(x.user_id) AS storage_users,
    CAST(coalesce(sum(x.storage_hourly), 0) AS DECIMAL(18,6)) AS storage_hourly_revenue,
    CAST(coalesce(sum(x.storage_hourly), 0) * {HOURS_PER_YEAR} AS DECIMAL(18,6)) AS storage_run_rate
FROM buckets AS b
CROSS JOIN as_of AS a
LEFT JOIN bucketed AS x ON x.bucket = b.bucket
GROUP BY b.bucket_order, b.bucket, a.as_of_hour
"""

INVOICE_PREVIEW_SQL = f"""
WITH lines AS (
    SELECT * FROM {INVOICE_LINES}
),
micros AS (
    SELECT *, CAST(amount * 1000000 AS BIGINT) AS amount_micros FROM lines
),
rounded AS (
    -- half-even to the cent on exact integers
    SELECT
        * EXCLUDE (amount_micros),
        CAST(CAST(
            amount_micros // 10000
            + CASE
                WHEN amount_micros % 10000 > 5000 THEN 1
                WHEN amount_micros % 10000 = 5000 AND (amount_micros // 10000) % 2 = 1 THEN 1
                ELSE 0
            END
        AS DECIMAL(18,0)) * CAST(0.01 AS DECIMAL(3,2)) AS DECIMAL(18,2)) AS amount_due
    FROM micros
)
SELECT
    *,
    CAST(sum(amount_due) OVER (PARTITION BY billing_month, user_id, currency) AS DECIMAL(18,2))
        AS invoice_total
FROM rounded
"""


MODEL_SPECS: tuple[Model, ...] = (
    # the revenue path first: a watcher refreshes in this order where models do not depend on
    # each other, and invoice_lines (charges_hourly's state) is needed only by the next cycle
    Model(
        name="billing.charges_hourly",
        sql=CHARGES_HOURLY_SQL,
        # event_id alone identifies a row; the slice and hour in the key let a refresh tell new
        # rows from restated ones within the slices it touched, without scanning the whole table
        unique_key=("billing_month", "resource_id", "billing_hour", "event_id"),
        incremental_by=("billing_month", "resource_id"),
        # caps are running totals in hour order: an event can only change its own and later hours
        restate_from="billing_hour",
        incremental_sql=CHARGES_HOURLY_INCREMENTAL_SQL,
        # the same rows in Arrow and numpy: a watcher's cycle without this statement's fixed cost
        incremental_arrow=charges_incremental,
        # a re-sent event whose id is charged already is dropped unread, and a late event restates
        # its later hours only when it can move a cap crossing: other slices are not read (ADR 0055)
        dedupe_by="event_id",
        restate_scope=charges_scope,
        scope_lows=("monthly_cap",),
        state_models=(INVOICE_LINES,),
        upstream=(SOURCE,),
        description="Charge of every metered resource-hour (deduped usage event) with monthly caps "
        "applied; a late hour restates the later hours of its resource-month.",
        partition_by=("billing_month",),
    ),
    Model(
        name="billing.revenue_hourly",
        sql=REVENUE_HOURLY_SQL,
        # billing_date (a function of billing_hour) is in the key because it is the partition
        # column: a merge prunes the table's partitions only by key columns, so each commit reads
        # and rewrites the touched days' files, not every day of the month
        unique_key=("billing_date", "billing_hour", "product", "plan", "region", "currency"),
        # sums of charges: maintained from the change feed, not by re-aggregating touched hours
        additive_sql=REVENUE_HOURLY_ADDITIVE_SQL,
        additive=("revenue", "uncapped_revenue", "quantity", "usage_events"),
        additive_count="usage_events",
        upstream=(_CHARGES,),
        description="Exact revenue per hour, product, plan, region and currency.",
        partition_by=("billing_date",),
    ),
    Model(
        name="billing.run_rate",
        sql=RUN_RATE_SQL,
        unique_key=("product", "currency"),
        incremental_by=(),
        upstream=("billing.revenue_hourly",),
        description="Annual run rate per product: revenue of the latest complete hour × 8760.",
    ),
    Model(
        name=INVOICE_LINES,
        sql=INVOICE_LINES_SQL,
        unique_key=tuple(c.strip() for c in _LINE_KEY.split(",")),
        additive_sql=INVOICE_LINES_ADDITIVE_SQL,
        additive=("hours", "quantity", "uncapped_amount", "amount"),
        additive_count="hours",
        # nearly every resource meters every hour, so each commit rewrites the month's lines; its
        # one reader that needs them at once is charges_hourly, in the same runner, as state
        commit_every_s=10,
        upstream=(_CHARGES,),
        description="Month-to-date invoice lines per resource and plan (charged hours, quantity, "
        "uncapped and capped amounts, exact); charges_hourly reads its month-to-date totals here.",
        partition_by=("billing_month",),
    ),
    Model(
        name="billing.revenue_daily",
        sql=REVENUE_DAILY_SQL,
        unique_key=("billing_date", "product", "plan", "region", "currency"),
        incremental_by=("billing_date",),
        upstream=(_CHARGES,),
        description="Exact revenue per UTC day, product, plan, region and currency.",
    ),
    Model(
        name="billing.billable_users",
        sql=BILLABLE_USERS_SQL,
        unique_key=("billing_date", "product"),
        incremental_by=("billing_date",),
        upstream=(_CHARGES,),
        description="Users with a nonzero charge per UTC day and product (and users metered at all).",
    ),
    Model(
        name="billing.storage_run_rate_by_compute_spend",
        sql=STORAGE_RUN_RATE_SQL,
        unique_key=("compute_spend_bucket",),
        incremental_by=(),
        upstream=(_CHARGES, INVOICE_LINES, "billing.revenue_hourly"),
        description="Block-storage (volume) run rate as of the latest complete hour, by the user's "
        "month-to-date compute spend bucket (USD).",
    ),
    Model(
        name="billing.invoice_preview",
        sql=INVOICE_PREVIEW_SQL,
        unique_key=("billing_month", "user_id", "resource_id", "plan"),
        incremental_by=("billing_month", "user_id"),
        upstream=(INVOICE_LINES,),
        description="Month-to-date invoice lines per user (caps applied, lines rounded half-even to "
        "cents; invoice_total = sum of rounded lines).",
    ),
)


def models() -> tuple[Model, ...]:
    """The billing models (in dependency order)."""
    return MODEL_SPECS
