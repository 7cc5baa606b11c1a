"""Leads models: product-qualified leads, the sign-up → trial → paid funnel, the sales pipeline and
revenue per lead source. DuckDB SQL over the replicas ``shoal sync`` keeps in the lake
(``crm_replica.*``, ``warehouse_replica.*``) and the billing use case's ``billing.invoice_lines``.

Definitions (:mod:`.reference` implements the same rules independently, in plain Python):

1. **Product-qualified leads** (``leads.pql``): one row per account with at least one session in
   the *window*, the 14 days before the newest session start in the warehouse (``as_of``, so a
   rerun on the same data gives the same ranks). Integer points:

   - usage: 3 per session (at most 30 sessions), 15 per active user (at most 5), 10 per distinct
     feature used, 5 per view of ``/pricing`` or ``/contact-sales`` (at most 4), 20 when a user of
     the account is in a trial (started, not converted);
   - firmographics: employees ≥ 1000: 30, ≥ 200: 20, ≥ 50: 10; industry saas, fintech or
     ecommerce: 5.

   ``score`` is their sum, ``rank`` orders by score (then account_id), ``qualified`` is
   ``score >= 60``; ``open_opportunity`` says whether sales already works the account.
2. **Funnel** (``leads.funnel``): per sign-up cohort (``YYYY-MM`` of ``signed_up_at``) and
   ``signup_source``: users signed up, of them with a trial start, and with a trial converted to
   paid (``converted_at`` set); rates in % rounded to 2 decimals.
3. **Pipeline** (``leads.pipeline``): per sales rep and stage: opportunities, amount and the
   amount weighted by the stage's win probability (prospecting 0.1, qualification 0.2, proposal
   0.5, negotiation 0.8, closed_won 1, closed_lost 0, any other stage 0), exact decimals.
4. **Revenue per lead source** (``leads.revenue_by_source``): per billing month, sign-up source
   (``unknown`` for a billed user the CRM lacks) and currency: users billed, users with a nonzero
   amount, and the exact month-to-date revenue from ``billing.invoice_lines``.

Each model is rebuilt whole when one of its upstream tables moved (``incremental_by`` empty): a
CRM or warehouse change can move any account's rank or any cohort, and the tables are small
next to the event tables; the runner leaves them alone while no upstream changed.
"""

from __future__ import annotations

from shoal.models import Model

CRM = "crm_replica"
WAREHOUSE = "warehouse_replica"
WINDOW_DAYS = 14
QUALIFIED_SCORE = 60
STAGE_PROBABILITY = (
    ("prospecting", "0.10"),
    ("qualification", "0.20"),
    ("proposal", "0.50"),
    ("negotiation", "0.80"),
    ("closed_won", "1.00"),
    ("closed_lost", "0.00"),
)
INTENT_PATHS = ("/pricing", "/contact-sales")
FIT_INDUSTRIES = ("saas", "fintech", "ecommerce")


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


PQL_SQL = f"""
WITH as_of AS (
    SELECT max(started_at) AS as_of, max(started_at) - INTERVAL {WINDOW_DAYS} DAY AS since
    FROM {WAREHOUSE}.sessions
),
members AS (SELECT user_id, account_id FROM {CRM}.users),
sess AS (
    SELECT m.account_id, count(*) AS sessions, count(DISTINCT s.user_id) AS active_users
    FROM {WAREHOUSE}.sessions AS s JOIN members AS m USING (user_id), as_of AS w
    WHERE s.started_at > w.since AND s.started_at <= w.as_of
    GROUP BY m.account_id
),
feat AS (
    SELECT m.account_id, count(DISTINCT f.feature) AS features
    FROM {WAREHOUSE}.feature_usage AS f JOIN members AS m USING (user_id), as_of AS w
    WHERE f.used_at > w.since AND f.used_at <= w.as_of
    GROUP BY m.account_id
),
intent AS (
    SELECT m.account_id, count(*) AS pricing_views
    FROM {WAREHOUSE}.page_views AS v JOIN members AS m USING (user_id), as_of AS w
    WHERE v.path IN ({_in(INTENT_PATHS)}) AND v.viewed_at > w.since AND v.viewed_at <= w.as_of
    GROUP BY m.account_id
),
trial AS (
    SELECT DISTINCT m.account_id
    FROM {WAREHOUSE}.trial_starts AS t JOIN members AS m USING (user_id)
    WHERE t.converted_at IS NULL
),
opp AS (
    SELECT account_id
    FROM {CRM}.opportunities
    WHERE stage NOT IN ('closed_won', 'closed_lost')
    GROUP BY account_id
),
scored AS (
    SELECT
        a.account_id,
        a.name,
        a.segment,
        a.industry,
        a.employees,
        a.region,
        a.owner_rep_id,
        s.sessions,
        s.active_users,
        coalesce(f.features, 0) AS features,
        coalesce(i.pricing_views, 0) AS pricing_views,
        t.account_id IS NOT NULL AS in_trial,
        o.account_id IS NOT NULL AS open_opportunity,
        3 * least(s.sessions, 30) + 15 * least(s.active_users, 5) + 10 * coalesce(f.features, 0)
            + 5 * least(coalesce(i.pricing_views, 0), 4)
            + CASE WHEN t.account_id IS NOT NULL THEN 20 ELSE 0 END AS usage_score,
        CASE
            WHEN a.employees >= 1000 THEN 30
            WHEN a.employees >= 200 THEN 20
            WHEN a.employees >= 50 THEN 10
            ELSE 0
        END + CASE WHEN a.industry IN ({_in(FIT_INDUSTRIES)}) THEN 5 ELSE 0 END AS fit_score
    FROM sess AS s
    JOIN {CRM}.accounts AS a USING (account_id)
    LEFT JOIN feat AS f USING (account_id)
    LEFT JOIN intent AS i USING (account_id)
    LEFT JOIN trial AS t USING (account_id)
    LEFT JOIN opp AS o USING (account_id)
)
SELECT
    *,
    CAST(usage_score + fit_score AS INTEGER) AS score,
    CAST(row_number() OVER (ORDER BY usage_score + fit_score DESC, account_id) AS INTEGER) AS rank,
    usage_score + fit_score >= {QUALIFIED_SCORE} AS qualified,
    (SELECT as_of FROM as_of) AS as_of
FROM scored
"""

FUNNEL_SQL = f"""
WITH trials AS (
    SELECT user_id, min(started_at) AS trial_at, min(converted_at) AS paid_at
    FROM {WAREHOUSE}.trial_starts
    GROUP BY user_id
),
people AS (
    SELECT
        strftime(u.signed_up_at, '%Y-%m') AS cohort,
        u.signup_source,
        t.trial_at IS NOT NULL AS trialled,
        t.paid_at IS NOT NULL AS paid
    FROM {CRM}.users AS u LEFT JOIN trials AS t USING (user_id)
)
SELECT
    cohort,
    signup_source,
    count(*) AS signups,
    count(*) FILTER (WHERE trialled) AS trials,
    count(*) FILTER (WHERE paid) AS paid,
    round(100.0 * count(*) FILTER (WHERE trialled) / count(*), 2) AS trial_pct,
    round(100.0 * count(*) FILTER (WHERE paid) / count(*), 2) AS paid_pct,
    CASE WHEN count(*) FILTER (WHERE trialled) > 0 THEN
        round(100.0 * count(*) FILTER (WHERE paid) / count(*) FILTER (WHERE trialled), 2)
    END AS trial_to_paid_pct
FROM people
GROUP BY cohort, signup_source
"""

_PROBABILITIES = ", ".join(f"('{s}', CAST({p} AS DECIMAL(3,2)))" for s, p in STAGE_PROBABILITY)

PIPELINE_SQL = f"""
WITH probability(stage, p) AS (VALUES {_PROBABILITIES})
SELECT
    o.rep_id,
    r.name AS rep_name,
    r.territory,
    o.stage,
    count(*) AS opportunities,
    CAST(sum(o.amount) AS DECIMAL(18,2)) AS amount,
    CAST(sum(o.amount * coalesce(p.p, 0)) AS DECIMAL(18,4)) AS weighted_amount
FROM {CRM}.opportunities AS o
JOIN {CRM}.sales_reps AS r USING (rep_id)
LEFT JOIN probability AS p USING (stage)
GROUP BY o.rep_id, r.name, r.territory, o.stage
"""

REVENUE_BY_SOURCE_SQL = f"""
WITH per_user AS (
    SELECT billing_month, user_id, currency, sum(amount) AS amount
    FROM billing.invoice_lines
    GROUP BY billing_month, user_id, currency
)
SELECT
    p.billing_month,
    coalesce(u.signup_source, 'unknown') AS signup_source,
    p.currency,
    count(*) AS users,
    count(*) FILTER (WHERE p.amount > 0) AS paying_users,
    CAST(sum(p.amount) AS DECIMAL(18,6)) AS revenue
FROM per_user AS p
LEFT JOIN {CRM}.users AS u USING (user_id)
GROUP BY p.billing_month, coalesce(u.signup_source, 'unknown'), p.currency
"""

PQL = "leads.pql"
FUNNEL = "leads.funnel"
PIPELINE = "leads.pipeline"
REVENUE_BY_SOURCE = "leads.revenue_by_source"

MODEL_SPECS: tuple[Model, ...] = (
    Model(
        name=PQL,
        sql=PQL_SQL,
        unique_key=("account_id",),
        upstream=(
            f"{WAREHOUSE}.sessions",
            f"{WAREHOUSE}.feature_usage",
            f"{WAREHOUSE}.page_views",
            f"{WAREHOUSE}.trial_starts",
            f"{CRM}.users",
            f"{CRM}.accounts",
            f"{CRM}.opportunities",
        ),
        description="Product-qualified leads: accounts active in the last 14 days ranked by a score "
        "of usage and firmographics (qualified: score >= 60).",
    ),
    Model(
        name=FUNNEL,
        sql=FUNNEL_SQL,
        unique_key=("cohort", "signup_source"),
        upstream=(f"{CRM}.users", f"{WAREHOUSE}.trial_starts"),
        description="Sign-up → trial → paid per sign-up month and lead source.",
    ),
    Model(
        name=PIPELINE,
        sql=PIPELINE_SQL,
        unique_key=("rep_id", "stage"),
        upstream=(f"{CRM}.opportunities", f"{CRM}.sales_reps"),
        description="Sales pipeline per rep and stage: opportunities, amount, probability-weighted amount.",
    ),
    Model(
        name=REVENUE_BY_SOURCE,
        sql=REVENUE_BY_SOURCE_SQL,
        unique_key=("billing_month", "signup_source", "currency"),
        upstream=("billing.invoice_lines", f"{CRM}.users"),
        description="Month-to-date billing revenue per lead (sign-up) source.",
    ),
)

#: the models that read only the CRM and the warehouse (no billing tables needed)
OPERATIONAL = (PQL, FUNNEL, PIPELINE)


def models() -> tuple[Model, ...]:
    """The leads models."""
    return MODEL_SPECS
