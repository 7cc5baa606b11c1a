"""Use cases and commands plug in through entry points: every registered part loads, the CLI mounts
each use case's group under its name, and a broken or clashing plug-in is a one-line error."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from importlib import import_module
from importlib.metadata import EntryPoint

import pytest
import typer
from typer.testing import CliRunner

from shoal.cli import plugins
from shoal.usecases import registry
from shoal.usecases.registry import UseCase, UseCaseError, discover, load


def test_the_shipped_use_cases_are_registered() -> None:
    by_name = {u.name: u for u in discover()}
    assert list(by_name) == ["billing", "infra", "leads", "metrics", "support"]
    assert by_name["support"].models == "shoal.usecases.support.models"
    assert by_name["billing"].models == "shoal.usecases.billing.models"
    assert by_name["infra"].cli == "shoal.usecases.infra.cli:app"
    assert by_name["infra"].models == "shoal.usecases.infra.models"  # the demo project lists it
    assert by_name["metrics"].cli == "shoal.usecases.metrics.cli:app"
    assert by_name["leads"].cli == "shoal.usecases.leads.cli:app"
    assert [u.name for u in by_name.values() if u.demo_step] == ["billing", "infra", "leads", "support"]


@pytest.mark.parametrize("usecase", discover(), ids=lambda u: u.name)
def test_every_part_of_a_use_case_loads(usecase: UseCase) -> None:
    if usecase.models:
        assert callable(import_module(usecase.models).models)
    if usecase.cli:
        assert isinstance(load(usecase.cli, "group"), typer.Typer)
    if usecase.demo_step:
        assert callable(load(usecase.demo_step, "step"))


def test_a_bad_import_string_is_one_line() -> None:
    with pytest.raises(UseCaseError, match=r"^CLI group 'shoal.usecases.nope:app' does not load: ") as exc:
        load("shoal.usecases.nope:app", "CLI group")
    assert "\n" not in str(exc.value)
    with pytest.raises(UseCaseError, match="does not load"):
        load("shoal.usecases.registry:missing", "CLI group")


def _fake_entry_points(**groups: list[EntryPoint]) -> Callable[..., list[EntryPoint]]:
    def entry_points(*, group: str) -> list[EntryPoint]:
        return groups.get(group, [])

    return entry_points


def test_an_entry_point_must_name_a_use_case_of_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    ep = EntryPoint(name="bar", value="shoal.usecases.infra:USECASE", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", _fake_entry_points(**{registry.ENTRY_POINT_GROUP: [ep]}))
    with pytest.raises(UseCaseError, match="must name a UseCase called 'bar'"):
        discover()


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def tables() -> None:
        """A core command."""

    return app


def test_mount_adds_groups_and_commands() -> None:
    app = _app()
    plugins.mount(app)
    plugins.mount(app)  # once only
    runner = CliRunner()
    top = runner.invoke(app, ["--help"])
    assert top.exit_code == 0, top.output
    for name in ("tables", "infra", "metrics", "demo"):
        assert name in top.output
    assert "Usage: root infra simulate" in runner.invoke(app, ["infra", "simulate", "--help"]).output
    assert "Usage: root metrics scrape" in runner.invoke(app, ["metrics", "scrape", "--help"]).output
    assert "--small" in runner.invoke(app, ["demo", "--help"]).output


def test_a_plug_in_may_not_shadow_a_command(monkeypatch: pytest.MonkeyPatch) -> None:
    ep = EntryPoint(name="tables", value="shoal.demo.cli:demo", group=plugins.COMMANDS_GROUP)
    monkeypatch.setattr(plugins, "entry_points", _fake_entry_points(**{plugins.COMMANDS_GROUP: [ep]}))
    with pytest.raises(UseCaseError, match=r"would shadow the command 'shoal tables'"):
        plugins.mount(_app())


def test_the_cli_reports_a_broken_use_case_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from shoal.cli import main

    ep = EntryPoint(name="foo", value="shoal.usecases.nope:USECASE", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", _fake_entry_points(**{registry.ENTRY_POINT_GROUP: [ep]}))
    monkeypatch.setattr("sys.argv", ["shoal", "--help"])
    monkeypatch.setattr(main, "app", _app())
    with pytest.raises(SystemExit) as exc:
        main.run()
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "use case entry point foo 'shoal.usecases.nope:USECASE' does not load" in err


def test_only_a_command_that_is_not_built_in_needs_the_plugins() -> None:
    app = _app()
    assert not plugins.needed(app, ["tables"])
    assert not plugins.needed(app, ["--debug", "tables", "--format", "json"])
    assert plugins.needed(app, ["infra", "simulate"])  # a use case's group
    assert plugins.needed(app, ["--help"])  # lists every command
    assert plugins.needed(app, [])


_IMPORTS = """
import sys
from shoal.cli import main
try:
    main.run({argv!r})
except SystemExit:
    pass
print(sorted(m for m in ("pandas", "shoal.serve", "shoal.usecases.infra") if m in sys.modules))
"""


@pytest.mark.parametrize(
    ("argv", "loaded"),
    [
        (["ingest", "--help"], []),
        (["--help"], ["shoal.serve", "shoal.usecases.infra"]),  # pandas only once a dataset is read
    ],
)
def test_a_built_in_command_starts_without_loading_the_plugins(argv: list[str], loaded: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _IMPORTS.format(argv=argv)], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == repr(loaded)
