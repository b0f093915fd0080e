"""The ``meterflow`` command line: settings are read here once and passed down."""

from __future__ import annotations

import typer

from meterflow.settings import Settings

app = typer.Typer(
    name="meterflow",
    help="Remote meter reading and prepaid billing for electricity and water.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _root(ctx: typer.Context) -> None:
    """Read the settings once; every command finds them in ``ctx.obj``."""
    ctx.obj = Settings()


def settings_of(ctx: typer.Context) -> Settings:
    obj = ctx.find_root().obj
    assert isinstance(obj, Settings)
    return obj


def _register() -> None:
    # Each command group lives beside the code it drives; one line each.
    from meterflow.db.cli import db_app
    from meterflow.stack.cli import stack_app
    from pipeline.cli import worker

    app.add_typer(stack_app, name="stack")
    app.add_typer(db_app, name="db")
    app.command("worker")(worker)
    # -- command groups (keep one line per group) --
    from connectors.frame_cli import frame_app
    app.add_typer(frame_app, name="frame")
    from pipeline.billing.cli import bill
    app.command("bill")(bill)
    from connectors.modbus.cli import poll_app
    app.add_typer(poll_app, name="poll")
    from connectors.cli import connect_app, dispatch, simulate_app
    app.add_typer(simulate_app, name="simulate"); app.add_typer(connect_app, name="connect"); app.command("dispatch")(dispatch)  # noqa: E501, E702


@app.command()
def demo(
    ctx: typer.Context,
    seconds: float = typer.Option(30.0, help="How long to produce simulated readings"),
) -> None:
    """Simulated meters -> Kafka -> pipeline -> TimescaleDB, shown live (stack must be up)."""
    from rich.console import Console

    from meterflow.demo import run_demo

    run_demo(settings_of(ctx), seconds, Console())


def main() -> None:
    _register()
    app()


if __name__ == "__main__":
    main()
