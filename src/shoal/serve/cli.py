"""``shoal serve`` and ``shoal tokens``, as Typer apps mounted by the CLI through the
``shoal.commands`` entry-point group (pyproject.toml)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table as RichTable

from shoal.options import FormatOpt, ProjectOpt
from shoal.output import OutputFormat, console, emit, err_console
from shoal.project import Project
from shoal.serve.state import tokens_path
from shoal.serve.tokens import Role, TokenStore

# -- shoal tokens -------------------------------------------------------------------------------------
tokens_app = typer.Typer(
    name="tokens",
    help="Access tokens of `shoal serve`: create, list, revoke (stored hashed in the project).",
    no_args_is_help=True,
    add_completion=False,
)


def _store(project: Path | None) -> TokenStore:
    return TokenStore(tokens_path(Project.load(project)))


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Argument(help="Who or what the token is for (e.g. ana, grafana).")],
    *,
    role: Annotated[
        Role, typer.Option(help="admin: everything; reader: granted namespaces only.")
    ] = Role.reader,
    grant: Annotated[
        list[str] | None, typer.Option("--grant", "-g", help="Namespace a reader may read (repeatable).")
    ] = None,
    pii: Annotated[
        bool, typer.Option("--pii", help="Show personal-data columns in clear (readers).")
    ] = False,
    project: ProjectOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Create a token; it is printed once and only its hash (and a SCRAM verifier) is kept."""
    record, secret = _store(project).create(name, role, grant or (), pii=pii)
    if fmt is OutputFormat.json:
        emit({**record.public(), "token": secret}, fmt)
        return
    console.print(f"token {record.id} ({record.role}) for {record.name}:")
    console.print(secret, highlight=False, soft_wrap=True)
    err_console.print(
        "[dim]Shown once: store it now. Revoke with `shoal tokens revoke " + record.id + "`.\n"
        f"Postgres clients: user {record.id} and the token as password authenticate with "
        "SCRAM-SHA-256 (the token never crosses the wire).[/dim]"
    )


@tokens_app.command("list")
def tokens_list(project: ProjectOpt = None, fmt: FormatOpt = OutputFormat.table) -> None:
    """List tokens (id, name, role, grants, created, revoked); never the secrets."""
    rows = [t.public() for t in _store(project).tokens()]
    if fmt is OutputFormat.json:
        emit(rows, fmt)
        return
    table = RichTable(header_style="bold cyan")
    for col in ("id", "name", "role", "namespaces", "pii", "wire auth", "created", "revoked"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["id"],
            r["name"],
            r["role"],
            ",".join(r["namespaces"]),
            str(r["pii"]),
            "scram" if r["scram"] else "cleartext",
            r["created"],
            r["revoked"] or "",
        )
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(
    token: Annotated[str, typer.Argument(help="Token id (or its name when unique).")],
    project: ProjectOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Revoke a token: a running server refuses it from its next request on."""
    record = _store(project).revoke(token)
    if fmt is OutputFormat.json:
        emit(record.public(), fmt)
    else:
        console.print(f"revoked token {record.id} ({record.name}) at {record.revoked}")


# -- shoal serve --------------------------------------------------------------------------------------
serve_app = typer.Typer(
    name="serve",
    help="Serve the lake: HTTP SQL API and the Postgres wire protocol, with tokens and roles.",
    add_completion=False,
    invoke_without_command=True,
)


@serve_app.callback(invoke_without_command=True)
def serve(
    *,
    project: ProjectOpt = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (default: serve.host).")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (default: serve.port, 8787).")] = None,
    pg_port: Annotated[
        int | None, typer.Option("--pg-port", help="Postgres wire port (default: serve.pg_port, 5433).")
    ] = None,
    no_pg: Annotated[bool, typer.Option("--no-pg", help="Do not start the Postgres wire listener.")] = False,
    workers: Annotated[int | None, typer.Option(help="Worker threads per blocking task pool.")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate: serve HTTPS and TLS.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key of --tls-cert.")] = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Start the server (Ctrl-C stops it; the query log is flushed on the way out)."""
    from shoal.serve.server import serve as run_server

    proj = Project.load(project)
    changes: dict[str, Any] = {
        k: v
        for k, v in {
            "host": host,
            "port": port,
            "pg_port": pg_port,
            "workers": workers,
            "tls_cert": str(tls_cert) if tls_cert else None,
            "tls_key": str(tls_key) if tls_key else None,
        }.items()
        if v is not None
    }
    if no_pg:
        changes["pg_port"] = None
    settings = proj.settings.serve.model_validate({**proj.settings.serve.model_dump(), **changes})
    scheme = "https" if settings.tls_cert else "http"
    where = {
        "http": f"{scheme}://{settings.host}:{settings.port}/v1",
        "openapi": f"{scheme}://{settings.host}:{settings.port}/v1/openapi.json",
        "postgres": None
        if settings.pg_port is None
        else f"postgresql://{settings.host}:{settings.pg_port}/lake",
        "tokens_file": str(tokens_path(proj)),
    }
    if fmt is OutputFormat.json:
        emit(where, fmt)
        sys.stdout.flush()  # the address line is read before the server blocks
    else:
        err_console.print(f"shoal serve: HTTP API on {where['http']} (OpenAPI: {where['openapi']})")
        if where["postgres"]:
            err_console.print(
                f"shoal serve: Postgres wire protocol on {where['postgres']} (token as password)"
            )
    run_server(proj, settings)
