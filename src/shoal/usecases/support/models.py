"""Incremental SQL models of the support use case (DuckDB 1.5 dialect).

``support.tickets`` (one row per ticket) is built from the raw ``support.ticket_events`` table;
``support.csat_daily`` (one row per creation day, team and product) from ``support.tickets``.
The exact semantics are those of :mod:`shoal.usecases.support.reference`, which the unit tests
compare these queries with.

Both queries are correct for any subset of their ``incremental_by`` values: every output row
depends only on the input rows with the same ``ticket_id`` (tickets) or ``day`` (csat_daily), and
duplicates are removed per ``(ticket_id, event_id)`` so a ``ticket_id`` filter can be pushed below
the dedupe window.

``support.ticket_events`` columns used (the protobuf -> Arrow mapping of ticket_events.proto):
``event_id, ticket_id, occurred_at, customer_id, customer_tier, team, product, channel, priority,
payload_case, agent_replied.public, status_changed.to_status, satisfaction_rated.rating``.
"""

from __future__ import annotations

from shoal.models import Model

TICKET_EVENTS = "support.ticket_events"
TICKETS = "support.tickets"
CSAT_DAILY = "support.csat_daily"

TICKETS_SQL = """
WITH events AS NOT MATERIALIZED (
    -- a redelivered event (same ticket_id and event_id) counts once
    SELECT *
    FROM support.ticket_events
    QUALIFY row_number() OVER (PARTITION BY ticket_id, event_id ORDER BY occurred_at) = 1
),
created AS (
    -- the ticket as opened: its earliest ticket_created event
    SELECT ticket_id, occurred_at AS created_at, customer_id, customer_tier, product, channel, priority
    FROM events
    WHERE payload_case = 'ticket_created'
    QUALIFY row_number() OVER (PARTITION BY ticket_id ORDER BY occurred_at, event_id) = 1
),
facts AS (
    SELECT
        c.ticket_id,
        any_value(c.created_at) AS created_at,
        any_value(c.customer_id) AS customer_id,
        any_value(c.customer_tier) AS customer_tier,
        any_value(c.product) AS product,
        any_value(c.channel) AS channel,
        any_value(c.priority) AS priority,
        arg_max(e.team, (e.occurred_at, e.event_id)) FILTER (WHERE e.team <> '') AS team,
        arg_max(e.status_changed.to_status, (e.occurred_at, e.event_id))
            FILTER (WHERE e.payload_case = 'status_changed') AS status,
        min(e.occurred_at) FILTER (
            WHERE e.payload_case = 'agent_replied' AND e.agent_replied.public
              AND e.occurred_at >= c.created_at
        ) AS first_response_at,
        max((e.occurred_at, e.event_id)) FILTER (WHERE e.payload_case = 'resolved') AS last_resolved,
        max((e.occurred_at, e.event_id)) FILTER (WHERE e.payload_case = 'reopened') AS last_reopened,
        count(*) FILTER (WHERE e.payload_case = 'reopened') AS reopen_count,
        count(*) FILTER (WHERE e.payload_case = 'escalated') AS escalation_count,
        arg_max(e.satisfaction_rated.rating, (e.occurred_at, e.event_id))
            FILTER (WHERE e.payload_case = 'satisfaction_rated') AS latest_csat,
        count(*) FILTER (WHERE e.payload_case = 'satisfaction_rated') AS csat_count
    FROM created AS c
    JOIN events AS e ON e.ticket_id = c.ticket_id
    GROUP BY c.ticket_id
),
resolved AS (
    SELECT
        *,
        CASE
            WHEN last_resolved IS NOT NULL AND (last_reopened IS NULL OR last_reopened < last_resolved)
            THEN last_resolved[1]
        END AS resolved_at
    FROM facts
)
SELECT
    ticket_id,
    created_at,
    CAST(timezone('UTC', created_at) AS DATE) AS day,
    customer_id,
    customer_tier,
    team,
    product,
    channel,
    priority,
    coalesce(status, 'TICKET_STATUS_NEW') AS status,
    first_response_at,
    date_diff('microsecond', created_at, first_response_at) / 1e6 AS first_response_s,
    resolved_at,
    date_diff('microsecond', created_at, resolved_at) / 1e6 AS resolution_s,
    reopen_count,
    escalation_count,
    CAST(latest_csat AS INTEGER) AS latest_csat,
    csat_count
FROM resolved
""".strip()

CSAT_DAILY_SQL = """
SELECT
    day,
    team,
    product,
    count(*) AS tickets_created,
    count(resolved_at) AS tickets_resolved,
    count(latest_csat) AS csat_responses,
    CASE WHEN count(latest_csat) > 0 THEN
        round(100 * CAST(count(*) FILTER (WHERE latest_csat >= 4) AS DOUBLE) / count(latest_csat), 2)
    END AS csat_pct,
    quantile_cont(first_response_s, 0.5) AS first_response_p50_s,
    quantile_cont(first_response_s, 0.9) AS first_response_p90_s,
    quantile_cont(resolution_s, 0.5) AS resolution_p50_s,
    quantile_cont(resolution_s, 0.9) AS resolution_p90_s
FROM support.tickets
GROUP BY day, team, product
""".strip()


def models() -> tuple[Model, ...]:
    """The support models."""
    return (
        Model(
            name=TICKETS,
            sql=TICKETS_SQL,
            unique_key=("ticket_id",),
            incremental_by=("ticket_id",),
            upstream=(TICKET_EVENTS,),
            description=(
                "One row per support ticket: creation facts, latest team and status, first "
                "response and resolution times, reopen/escalation counts and latest CSAT rating."
            ),
            partition_by=(),
        ),
        Model(
            name=CSAT_DAILY,
            sql=CSAT_DAILY_SQL,
            unique_key=("day", "team", "product"),
            incremental_by=("day",),
            upstream=(TICKETS,),
            description=(
                "Per ticket-creation day (UTC), team and product: tickets created and resolved, "
                "CSAT responses and % satisfied (4-5), p50/p90 first response and resolution seconds."
            ),
            partition_by=(),
        ),
    )
