"""The HTTP API over real HTTP (uvicorn on 127.0.0.1, httpx): auth, catalog, formats, errors, metrics."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pyarrow as pa
import pytest
from httpx import Client

from harness.serve_sample import SampleProject, auth, http_client, sample_project


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> SampleProject:
    return sample_project(tmp_path_factory.mktemp("http"))


@pytest.fixture(scope="module")
def client(served: SampleProject) -> Iterator[Client]:
    with http_client(served.project) as c:
        yield c


def strict_json(text: str) -> object:
    def refuse(name: str) -> object:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer shoal_x y"},
    ],
)
def test_no_or_bad_token_is_401(client: Client, headers: dict[str, str]) -> None:
    r = client.get("/v1/tables", headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"]["type"] == "Unauthorized"


def test_revoked_token_is_401(client: Client, served: SampleProject) -> None:
    r = client.post("/v1/query", json={"sql": "select 1"}, headers=auth(served.revoked))
    assert r.status_code == 401
    assert "revoked" in r.json()["error"]["message"]


def test_health_and_openapi_need_no_token(client: Client) -> None:
    assert client.get("/v1/health").json()["status"] == "ok"
    doc = client.get("/v1/openapi.json").json()
    assert {"/v1/query", "/v1/tables", "/v1/tables/{name}", "/v1/health"} <= set(doc["paths"])


def test_tables_lists_only_granted_ones(client: Client, served: SampleProject) -> None:
    names = [
        t["name"] for t in client.get("/v1/tables", headers=auth(served.support_reader)).json()["tables"]
    ]
    assert sorted(names) == ["support.customers", "support.tickets"]
    names = [t["name"] for t in client.get("/v1/tables", headers=auth(served.admin)).json()["tables"]]
    assert "billing.invoices" in names
    assert not [n for n in names if n.startswith("_")]


def test_tables_with_freshness(client: Client, served: SampleProject) -> None:
    plain = client.get("/v1/tables", headers=auth(served.support_reader)).json()["tables"]
    assert all("freshness" not in t for t in plain)
    r = client.get("/v1/tables", params={"freshness": "true"}, headers=auth(served.support_reader))
    fresh = {t["name"]: t["freshness"] for t in r.json()["tables"]}
    assert fresh["support.tickets"]["newest_data"] == "2026-01-01T03:19:00+00:00"
    assert fresh["support.customers"]["time_column"] is None
    assert fresh["support.customers"]["last_commit_age_s"] >= 0


def test_table_detail_freshness_lineage_and_403_404(client: Client, served: SampleProject) -> None:
    r = client.get("/v1/tables/support.tickets", headers=auth(served.support_reader))
    assert r.status_code == 200
    detail = r.json()
    assert detail["owner"] == "support-team"
    assert detail["source"] == "kafka support.ticket_events"
    assert [c["name"] for c in detail["schema"]][:3] == ["id", "customer_id", "event_time"]
    assert detail["freshness"]["time_column"] == "event_time"
    assert detail["freshness"]["newest_data"] == "2026-01-01T03:19:00+00:00"
    assert detail["freshness"]["last_commit_age_s"] >= 0
    assert detail["lineage"]["kind"] == "pipeline"
    offsets = {(p["topic"], p["partition"]): p["next_offset"] for p in detail["lineage"]["partitions"]}
    assert offsets == {("support.ticket_events", 0): 100, ("support.ticket_events", 1): 100}
    assert "uri" not in detail
    customers = client.get("/v1/tables/support.customers", headers=auth(served.support_reader)).json()
    assert customers["masked_columns"] == ["email", "ip", "name"]
    model = client.get("/v1/tables/billing.daily_revenue", headers=auth(served.admin)).json()
    assert model["lineage"]["kind"] == "model"
    assert model["lineage"]["inputs"] == [{"table": "billing.invoices", "version": 1, "commit": 1}]
    assert model["partition_by"] == []
    denied = client.get("/v1/tables/billing.invoices", headers=auth(served.support_reader))
    assert denied.status_code == 403
    assert "billing.invoices" in denied.json()["error"]["message"]
    assert client.get("/v1/tables/nope.nothing", headers=auth(served.admin)).status_code == 404


def test_query_json_is_strict_with_documented_encodings(client: Client, served: SampleProject) -> None:
    sql = (
        "select id, amount, day, tags, meta, raw, 'nan'::double as nan, 'inf'::double as inf,"
        " timestamptz '2026-01-02 03:04:05.5+00' as ts from billing.invoices order by id"
    )
    r = client.post("/v1/query", json={"sql": sql}, headers=auth(served.admin))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    doc = strict_json(r.text)
    assert isinstance(doc, dict)
    assert doc["error"] is None
    assert doc["row_count"] == 3
    assert [c["name"] for c in doc["columns"]] == [
        "id",
        "amount",
        "day",
        "tags",
        "meta",
        "raw",
        "nan",
        "inf",
        "ts",
    ]
    first = doc["rows"][0]
    assert first == [
        1,
        "10.500000",
        "2026-01-01",
        ["a", "b"],
        {"plan": "pro", "seats": 3},
        "00ff",
        "NaN",
        "Infinity",
        "2026-01-02T03:04:05.500000+00:00",
    ]
    assert doc["rows"][1][4] is None


def test_query_csv_and_arrow_stream(client: Client, served: SampleProject) -> None:
    sql = "select id, team from support.tickets order by id"
    r = client.post("/v1/query", json={"sql": sql, "format": "csv"}, headers=auth(served.support_reader))
    lines = r.text.splitlines()
    assert r.headers["content-type"].startswith("text/csv")
    assert lines[0] == "id,team"
    assert lines[1:3] == ["0,amer", "1,emea"]
    assert len(lines) == 201
    r = client.post(
        "/v1/query",
        json={"sql": "select * from range(25000) t(n)"},
        headers={**auth(served.admin), "Accept": "application/vnd.apache.arrow.stream"},
    )
    assert r.headers["content-type"] == "application/vnd.apache.arrow.stream"
    reader = pa.ipc.open_stream(r.content)
    batches = list(reader)
    assert len(batches) >= 3  # streamed in batches of at most 10,000 rows
    assert sum(b.num_rows for b in batches) == 25000
    r = client.get("/v1/query", params={"sql": "select 7 as x", "format": "csv"}, headers=auth(served.admin))
    assert r.text == "x\n7\n"


def test_prepared_parameters(client: Client, served: SampleProject) -> None:
    r = client.post(
        "/v1/query",
        json={
            "sql": "select count(*) as n from support.tickets where team = ? and id < ?",
            "params": ["emea", 10],
        },
        headers=auth(served.support_reader),
    )
    assert r.json()["rows"] == [[5]]


@pytest.mark.parametrize(
    ("sql", "status", "named"),
    [
        ("select * from billing.invoices", 403, "billing.invoices"),
        ("select * from read_csv('/etc/hostname')", 403, "read_csv"),
        ("SELECT GETENV('HOME')", 403, "getenv"),
        ("select 1; select 2", 403, "one statement"),
        ("copy support.customers to '/tmp/x.csv'", 403, "COPY"),
        ("set enable_external_access = true", 403, "SET"),
        ("select * from nope.nothing", 404, "nope.nothing"),
        ("select no_such_column from support.tickets", 400, "no_such_column"),
    ],
)
def test_refusals_over_http(client: Client, served: SampleProject, sql: str, status: int, named: str) -> None:
    r = client.post("/v1/query", json={"sql": sql}, headers=auth(served.support_reader))
    assert r.status_code == status
    assert named in r.json()["error"]["message"]
    ok = client.post("/v1/query", json={"sql": "select 1 as one"}, headers=auth(served.support_reader))
    assert ok.json()["rows"] == [[1]]


def test_malformed_requests_are_4xx(client: Client, served: SampleProject) -> None:
    h = auth(served.admin)
    assert client.post("/v1/query", content=b"{not json", headers=h).status_code == 422
    assert client.post("/v1/query", json={"sql": 1}, headers=h).status_code == 422
    assert client.post("/v1/query", json={"sql": "select 1", "evil": True}, headers=h).status_code == 422
    assert client.post("/v1/query", json={"sql": "select 1", "format": "xml"}, headers=h).status_code == 422


def test_metrics_count_requests_and_queries(client: Client, served: SampleProject) -> None:
    client.post("/v1/query", json={"sql": "select 1"}, headers=auth(served.admin))
    text = client.get("/metrics").text
    assert 'shoal_serve_http_requests_total{method="POST",route="/v1/query",status="200"}' in text
    assert 'shoal_serve_queries_total{outcome="ok",protocol="http"}' in text
    assert "shoal_serve_http_request_seconds_bucket" in text
    assert "shoal_serve_queries_running 0.0" in text
