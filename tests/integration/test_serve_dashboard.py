"""The dashboard in headless Debian Chromium (Playwright driving /usr/bin/chromium) against a lake
built by ``shoal demo --small``: every page renders with no console errors, chart points match SQL,
the console runs a query, a reader without the billing grant sees no revenue, pages follow new
commits without a reload. Screenshots land in the test's tmp dir (``dashboard-*.png``)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from harness import free_port
from harness.browser import HEADLESS_FLAGS, chromium_binary
from shoal.demo import run_demo
from shoal.project import Project
from shoal.serve.server import Server, serving_in_thread
from shoal.serve.state import tokens_path
from shoal.serve.tokens import Role, TokenStore

pytestmark = pytest.mark.integration

playwright_sync = pytest.importorskip("playwright.sync_api")
CHROMIUM = chromium_binary()
if CHROMIUM is None:
    pytest.skip("Debian chromium is not installed", allow_module_level=True)

PAGES = ("overview", "csat", "revenue", "infra", "catalog", "console")


@dataclass(frozen=True)
class Demo:
    project: Project
    admin: str
    reader: str  # support, infra, metrics, company: no billing
    shots: Path


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    directory = tmp_path_factory.mktemp("dashboard")
    summary = run_demo(directory / "demo", small=True, quiet=True)
    project = Project.load(directory / "demo")
    # the demo ends with how to serve it and a fresh admin token: the tests log in with that one
    assert summary["serve"]["command"] == f"shoal serve -p {directory / 'demo'}"
    assert summary["serve"]["dashboard"].endswith(":8787/")
    admin = summary["serve"]["admin_token"]
    store = TokenStore(tokens_path(project))
    assert [t.role for t in store.tokens()] == [Role.admin]
    project.lake.mark_pii("company.users", ["email_domain"])  # the demo marks none
    _, reader = store.create("ops", Role.reader, ["support", "infra", "metrics", "company"])
    shots = directory / "screenshots"
    shots.mkdir()
    return Demo(project, admin, reader, shots)


@pytest.fixture(scope="module")
def server(demo: Demo) -> Iterator[Server]:
    settings = demo.project.settings.serve.model_copy(update={"port": free_port(), "pg_port": None})
    with serving_in_thread(demo.project, settings) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    flags = [f for f in HEADLESS_FLAGS if f != "--headless"]  # Playwright adds its own headless flag
    with playwright_sync.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)
        yield chromium
        chromium.close()


class Session:
    """One logged-in tab that records console errors and uncaught exceptions."""

    def __init__(self, browser: Any, base: str, token: str) -> None:
        # the page forbids eval (CSP); Playwright's wait_for_function needs it in the test only
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.base = base
        self.page.goto(base + "/?poll=1000")
        self.page.fill("#token", token)
        self.page.click("#login button[type=submit]")
        self.page.wait_for_selector("#page[data-rendered]")

    def open(self, name: str) -> Any:
        page = self.page
        before = int(page.get_attribute("#page", "data-rendered") or 0)
        page.evaluate(f"location.hash = '#{name}'")
        page.wait_for_function(
            f"document.querySelector('#page').dataset.page === '{name}' && "
            f"Number(document.querySelector('#page').dataset.rendered) > {before}"
        )
        return page

    def points(self, selector: str) -> list[dict[str, str]]:
        return list(
            self.page.eval_on_selector_all(
                f"{selector} .pt",
                "els => els.map(e => ({series: e.dataset.series, x: e.dataset.x, y: e.dataset.y}))",
            )
        )

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def admin(browser: Any, server: Server, demo: Demo) -> Iterator[Session]:
    s = Session(browser, f"http://127.0.0.1:{server.settings.port}", demo.admin)
    yield s
    s.close()


def sql(demo: Demo, query: str) -> list[dict[str, Any]]:
    with demo.project.connect(databases=False) as con:
        return con.query_arrow(query).to_pylist()  # type: ignore[no-any-return]


def test_every_page_renders_without_console_errors(admin: Session, demo: Demo) -> None:
    expected_charts = {"csat": "#csat-pct", "revenue": "#rev-hourly", "infra": "#infra-power"}
    for name in PAGES:
        page = admin.open(name)
        if name in expected_charts:
            assert admin.points(expected_charts[name]), f"{name}: no data points"
        assert not page.query_selector_all("#page .error"), f"{name}: {page.inner_text('#page')[:500]}"
        page.screenshot(path=str(demo.shots / f"dashboard-{name}.png"), full_page=True)
    admin.open("overview")
    text = admin.page.inner_text("#ov-pipelines")
    assert "billing_usage" in text
    assert "support_tickets" in text
    assert "support.csat_daily" in admin.page.inner_text("#ov-tables")
    assert admin.errors == []


def test_chart_points_match_sql(admin: Session, demo: Demo) -> None:
    admin.open("revenue")
    bars = {p["x"]: float(p["y"]) for p in admin.points("#rev-runrate")}
    want = {
        f"{r['product']} ({r['currency']})": float(r["run_rate"])
        for r in sql(demo, "select product, currency, run_rate from billing.run_rate")
    }
    assert bars == pytest.approx(want)
    assert len(want) >= 3

    admin.open("csat")
    plotted = {(p["series"], p["x"][:10]): float(p["y"]) for p in admin.points("#csat-pct")}
    rows = sql(
        demo,
        "select team, cast(day as varchar) as day, "
        "sum(csat_pct * csat_responses) / sum(csat_responses) as pct from support.csat_daily "
        "group by all having sum(csat_responses) > 0",
    )
    assert len(rows) >= 5
    for r in rows:
        assert plotted[(r["team"], r["day"])] == pytest.approx(r["pct"])

    page = admin.open("infra")
    assert page.query_selector_all("#infra-power rect.band"), "power anomalies are not marked"
    anomalies = sql(demo, "select count(*) as n from infra.anomalies")[0]["n"]
    assert len(page.query_selector_all("#infra-anomalies tbody tr")) == anomalies
    page.click("#infra-anomalies tbody tr.click")
    page.wait_for_selector("#infra-focus .pt")
    page.screenshot(path=str(demo.shots / "dashboard-infra-focus.png"), full_page=True)
    assert admin.errors == []


def test_console_runs_a_query_and_charts_it(admin: Session, demo: Demo) -> None:
    page = admin.open("console")
    query = "select team, count(*) as tickets from support.tickets group by 1 order by 1"
    page.fill("#sql", query)
    page.click("#run")
    page.wait_for_selector("#sql-result tbody tr")
    cells = page.eval_on_selector_all(
        "#sql-result tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.innerText))"
    )
    want = sql(demo, query)
    assert [c[0] for c in cells] == [r["team"] for r in want]
    assert {p["x"]: int(p["y"]) for p in admin.points("#sql-chart")} == {
        r["team"]: r["tickets"] for r in want
    }
    page.screenshot(path=str(demo.shots / "dashboard-console.png"), full_page=True)
    # a refused query shows its one-line error, and the page keeps working
    page.fill("#sql", "select * from read_csv('/etc/passwd')")
    page.click("#run")
    page.wait_for_selector("#sql-result .error")
    assert "read_csv" in page.inner_text("#sql-result .error")
    admin.errors[:] = [e for e in admin.errors if "403" not in e]  # the browser logs the refused fetch
    assert admin.errors == []


def test_catalog_shows_lineage(admin: Session, demo: Demo) -> None:
    page = admin.open("catalog")
    page.evaluate("location.hash = '#catalog/support.ticket_events'")
    page.wait_for_selector("#cat-name")
    detail = page.inner_text("#cat-detail")
    assert "Lineage (pipeline)" in detail
    assert "support_tickets" in detail
    page.evaluate("location.hash = '#catalog/support.csat_daily'")
    page.wait_for_function("document.querySelector('#cat-name')?.innerText === 'support.csat_daily'")
    assert "Lineage (model)" in page.inner_text("#cat-detail")
    page.screenshot(path=str(demo.shots / "dashboard-catalog-detail.png"), full_page=True)
    assert admin.errors == []


def test_reader_without_billing_grant_gets_no_revenue(browser: Any, server: Server, demo: Demo) -> None:
    s = Session(browser, f"http://127.0.0.1:{server.settings.port}", demo.reader)
    try:
        page = s.open("revenue")
        assert "billing.revenue_hourly" in page.inner_text(".denied")
        assert s.points("#page") == []
        status = page.evaluate(
            """async () => (await fetch('v1/query', {method: 'POST',
                 headers: {'Authorization': 'Bearer ' + sessionStorage.getItem('shoal.token'),
                           'Content-Type': 'application/json'},
                 body: JSON.stringify({sql: 'select sum(revenue) from billing.revenue_daily'})})).status"""
        )
        assert status == 403
        s.errors[:] = [e for e in s.errors if "403" not in e]  # the browser logs the refused fetch
        page.screenshot(path=str(demo.shots / "dashboard-revenue-reader.png"), full_page=True)
        s.open("csat")
        assert s.points("#csat-pct")  # granted namespaces still work
        # personal data stays masked in the console and is marked so in the catalog
        page = s.open("console")
        page.fill(
            "#sql", "select email_domain, count(*) as users from company.users group by 1 order by 2 desc"
        )
        page.click("#run")
        page.wait_for_selector("#sql-result tbody tr")
        shown = page.eval_on_selector_all(
            "#sql-result tbody tr td:first-child", "tds => tds.map(t => t.innerText)"
        )
        assert shown
        assert all(v.startswith("pii_") for v in shown)
        page.evaluate("location.hash = '#catalog/company.users'")
        page.wait_for_function("document.querySelector('#cat-name')?.innerText === 'company.users'")
        assert "masked" in page.inner_text("#cat-detail")
        assert s.errors == []
    finally:
        s.close()


def test_pages_follow_new_commits_without_reload(admin: Session, demo: Demo) -> None:
    page = admin.open("csat")
    before = len(admin.points("#csat-pct"))
    marker = page.evaluate("window.__same_document = 1")
    assert marker == 1
    daily = demo.project.lake.table("support.csat_daily")
    row = sql(demo, "select * from support.csat_daily order by day desc limit 1")[0]
    row["day"] = row["day"].replace(year=row["day"].year + 1)
    row["csat_pct"], row["csat_responses"] = 42.0, 10
    daily.append(pa.Table.from_pylist([row], schema=demo.project.lake.describe("support.csat_daily").schema))
    page.wait_for_function(f"document.querySelectorAll('#csat-pct .pt').length > {before}", timeout=15_000)
    assert page.evaluate("window.__same_document") == 1  # updated in place, not reloaded
    new = [p for p in admin.points("#csat-pct") if p["x"].startswith(str(row["day"]))]
    assert new
    assert math.isclose(float(new[0]["y"]), 42.0)
    assert admin.errors == []
