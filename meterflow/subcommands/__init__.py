"""The sub-commands of ``meterflow``, one module per command or group; each reads the
settings the root callback put in the context (``settings_of``) and passes down what the
code below it needs (docs/architecture.md, layers)."""

from __future__ import annotations

import typer

from meterflow.settings import Settings


def settings_of(ctx: typer.Context) -> Settings:
    """The settings the root callback read once for this run (a command group run on its
    own, without the root, reads them here)."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Settings) else Settings()
