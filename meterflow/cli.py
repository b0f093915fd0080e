"""The ``meterflow`` command line: settings are read here once and passed down."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from meterflow.settings import Settings
from meterflow.subcommands import settings_of

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


def _register() -> None:
    """Each command lives in meterflow/subcommands/; imported only when the CLI runs."""
    from meterflow.subcommands.account import account_app, refund, topup
    from meterflow.subcommands.api import api, token_app, user_app
    from meterflow.subcommands.bill import bill
    from meterflow.subcommands.billing import billing_app
    from meterflow.subcommands.broker import broker_app
    from meterflow.subcommands.connect import connect_app, dispatch, simulate_app
    from meterflow.subcommands.dashboards import dashboards_app
    from meterflow.subcommands.db import db_app
    from meterflow.subcommands.device import device_app
    from meterflow.subcommands.frame import frame_app
    from meterflow.subcommands.notify import notifier, notify_app
    from meterflow.subcommands.ops import ops_app
    from meterflow.subcommands.poll import poll_app
    from meterflow.subcommands.reconcile import reconcile_command
    from meterflow.subcommands.relay import relay
    from meterflow.subcommands.stack import stack_app
    from meterflow.subcommands.tenant import pay_app, tenant_app
    from meterflow.subcommands.topics import topics_app
    from meterflow.subcommands.worker import worker

    groups = {"stack": stack_app, "db": db_app, "account": account_app, "frame": frame_app,
              "poll": poll_app, "connect": connect_app, "simulate": simulate_app,
              "user": user_app, "token": token_app, "ops": ops_app,
              "notify": notify_app, "topics": topics_app, "dashboards": dashboards_app,
              "broker": broker_app, "device": device_app, "billing": billing_app,
              "tenant": tenant_app, "pay": pay_app}
    for name, group in groups.items():
        app.add_typer(group, name=name)
    commands: dict[str, Callable[..., Any]] = {
        "worker": worker, "relay": relay, "dispatch": dispatch, "topup": topup,
        "refund": refund, "reconcile": reconcile_command, "bill": bill, "api": api,
        "notifier": notifier}
    for name, command in commands.items():
        app.command(name)(command)


@app.command()
def demo(
    ctx: typer.Context,
    meters: int = typer.Option(200, min=4, help="Simulated meters, all protocols"),
    speed: float = typer.Option(60.0, help="Simulated seconds per real second"),
    seconds: float = typer.Option(0.0, help="Stop after N seconds (0: at Ctrl-C)"),
) -> None:
    """A simulated building billed live: fleet, accounts, pipeline, commands (stack up)."""
    from rich.console import Console

    from meterflow.demo import run_demo

    run_demo(settings_of(ctx), meters, speed, seconds, Console())


def main() -> None:
    _register()
    app()


if __name__ == "__main__":
    main()
