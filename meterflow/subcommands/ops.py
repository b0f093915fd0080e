"""``meterflow ops ...``: the operators' commands, over the HTTP API.

``--url``/``--token`` (or METERFLOW_API_URL / METERFLOW_API_TOKEN) say where and who; an
HTTPS API with a certificate of a private CA is verified with ``--ca-file``
(METERFLOW_API_CA_FILE), else with the system's CAs. Every
command prints the API's JSON answer (``--json``) or a short table; a refusal prints the
API's ``field: reason`` list and exits 1 (3 for a conflict, e.g. an idempotency key used
for another request). ``ops call`` reaches every endpoint; the named commands cover the
daily work. Long batches show a progress bar while the command polls.
"""

from __future__ import annotations

import json
import ssl
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

ops_app = typer.Typer(help="Operator commands over the HTTP API (--url, --token).",
                      no_args_is_help=True)
batch_app = typer.Typer(help="Batch operations with progress.", no_args_is_help=True)
ops_app.add_typer(batch_app, name="batch")
console = Console()


class Client:
    def __init__(self, url: str, token: str, ca_file: Path | None = None) -> None:
        verify: ssl.SSLContext | bool = True
        if ca_file is not None:
            verify = ssl.create_default_context(cafile=str(ca_file))
        self.http = httpx.Client(base_url=url.rstrip("/") + "/api/v1", timeout=60.0,
                                 headers={"Authorization": f"Bearer {token}"} if token else {},
                                 verify=verify)

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            typer.echo(f"error: API unreachable at {self.http.base_url}: {exc}", err=True)
            raise typer.Exit(1) from None
        if response.status_code >= 400:
            try:
                errors = response.json().get("errors") or [{"field": "", "reason": response.text}]
            except ValueError:
                errors = [{"field": "", "reason": response.text}]
            for error in errors:
                where = f"{error['field']}: " if error.get("field") else ""
                typer.echo(f"error ({response.status_code}): {where}{error['reason']}", err=True)
            raise typer.Exit(3 if response.status_code == 409 else 1)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.call(method, path, **kwargs).json()


@ops_app.callback()
def _client(
    ctx: typer.Context,
    url: str = typer.Option("http://127.0.0.1:8080", envvar="METERFLOW_API_URL",
                            help="API base URL"),
    token: str = typer.Option("", envvar="METERFLOW_API_TOKEN", help="Bearer token"),
    ca_file: Path = typer.Option(None, "--ca-file", envvar="METERFLOW_API_CA_FILE",
                                 help="CA bundle of an HTTPS API (default: the system's)"),
) -> None:
    ctx.obj = {"client": Client(url, token, ca_file), "parent": ctx.obj}


def client(ctx: typer.Context) -> Client:
    obj = ctx.find_object(dict)
    assert obj is not None
    return obj["client"]


def show(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2))


@ops_app.command("call")
def call(ctx: typer.Context, method: str = typer.Argument(..., help="GET, POST, PUT, ..."),
         path: str = typer.Argument(..., help="Path under /api/v1, e.g. /accounts/A-101"),
         data: str = typer.Option(None, help="JSON body"),
         file: Path = typer.Option(None, help="Body from a file (CSV, YAML, JSON)"),
         content_type: str = typer.Option(None, help="Content type of --file"),
         key: str = typer.Option(None, help="Idempotency-Key header")) -> None:
    """Any endpoint: prints the JSON answer (or the body as is)."""
    headers = {"Idempotency-Key": key} if key else {}
    kwargs: dict[str, Any] = {"headers": headers}
    if data is not None:
        kwargs["content"] = data.encode()
        headers["Content-Type"] = "application/json"
    elif file is not None:
        kwargs["content"] = file.read_bytes()
        headers["Content-Type"] = content_type or {
            ".csv": "text/csv", ".json": "application/json"}.get(file.suffix, "application/yaml")
    response = client(ctx).call(method.upper(), path, **kwargs)
    if response.headers.get("content-type", "").startswith("application/json"):
        show(response.json())
    else:
        sys.stdout.buffer.write(response.content)


@ops_app.command("account")
def account(ctx: typer.Context, account_id: str) -> None:
    """An account: balance, alarm level, supply, meters, rules."""
    show(client(ctx).json("GET", f"/accounts/{account_id}"))


@ops_app.command("open")
def open_(ctx: typer.Context, file: Path = typer.Argument(..., help="Account JSON or CSV")
          ) -> None:
    """Open one account (JSON body) or a whole file of them (CSV, all or nothing)."""
    if file.suffix == ".csv":
        show(client(ctx).json("POST", "/accounts/import", content=file.read_bytes(),
                              headers={"Content-Type": "text/csv"}))
    else:
        show(client(ctx).json("POST", "/accounts", content=file.read_bytes(),
                              headers={"Content-Type": "application/json"}))


def _pay(ctx: typer.Context, kind: str, account_id: str, amount: str, key: str,
         note: str) -> None:
    response = client(ctx).call("POST", f"/{kind}s", json={
        "account_id": account_id, "amount": amount, "note": note},
        headers={"Idempotency-Key": key})
    body = response.json()
    replay = " (replayed: recorded before)" if response.headers.get(
        "Idempotent-Replayed") else ""
    typer.echo(f"payment {body['payment_id']}: {kind} {body['amount']} yuan, account "
               f"{account_id}{replay}")


@ops_app.command("topup")
def topup(ctx: typer.Context, account_id: str, amount: str = typer.Argument(..., help="Yuan"),
          key: str = typer.Option(..., "--key", help="Idempotency key"),
          note: str = typer.Option("", help="Note")) -> None:
    """Credit an account (the same key again returns the first payment)."""
    _pay(ctx, "topup", account_id, amount, key, note)


@ops_app.command("refund")
def refund(ctx: typer.Context, account_id: str, amount: str = typer.Argument(..., help="Yuan"),
           key: str = typer.Option(..., "--key", help="Idempotency key"),
           note: str = typer.Option("", help="Note")) -> None:
    """Pay credit back (refused above what can be refunded now)."""
    _pay(ctx, "refund", account_id, amount, key, note)


def _control(ctx: typer.Context, action: str, account: str | None, meter: str | None,
             key: str | None, reason: str) -> None:
    if (account is None) == (meter is None):
        typer.echo("error: give --account or --meter", err=True)
        raise typer.Exit(1)
    path = f"/accounts/{account}/{action}" if account else f"/meters/{meter}/{action}"
    body = client(ctx).json("POST", path, json={"reason": reason},
                            headers={"Idempotency-Key": key or uuid.uuid4().hex})
    for command in body["commands"]:
        typer.echo(f"{command['command_id']}  {command['meter_id']}  {command['action']}")


@ops_app.command("disconnect")
def disconnect(ctx: typer.Context, account: str = typer.Option(None), meter: str = typer.Option(
        None), key: str = typer.Option(None, help="Idempotency key (default: random)"),
        reason: str = typer.Option("", help="Why")) -> None:
    """Trip the relays / close the valves of an account or a meter."""
    _control(ctx, "disconnect", account, meter, key, reason)


@ops_app.command("reconnect")
def reconnect(ctx: typer.Context, account: str = typer.Option(None), meter: str = typer.Option(
        None), key: str = typer.Option(None, help="Idempotency key (default: random)"),
        reason: str = typer.Option("", help="Why")) -> None:
    """Close the relays / open the valves of an account or a meter."""
    _control(ctx, "reconnect", account, meter, key, reason)


@ops_app.command("command")
def command(ctx: typer.Context, command_id: str) -> None:
    """A command and its acknowledgements."""
    show(client(ctx).json("GET", f"/commands/{command_id}"))


@ops_app.command("rooms")
def rooms(ctx: typer.Context, site: str = typer.Option(None), building: str = typer.Option(None),
          supply: str = typer.Option(None), online: bool = typer.Option(None),
          as_json: bool = typer.Option(False, "--json")) -> None:
    """Every room: building, floor, online, balance, alarm level, supply, today."""
    params = {k: v for k, v in {"site_id": site, "building_id": building, "supply": supply,
                                "online": online, "limit": 1000}.items() if v is not None}
    data = client(ctx).json("GET", "/monitor/rooms", params=params)
    if as_json:
        show(data)
        return
    table = Table("room", "building", "floor", "online", "balance", "alarm", "supply",
                  "kWh today", "m3 today", "yuan today")
    for r in data["items"]:
        table.add_row(r["room_id"], r["building_id"], str(r["floor_level"]),
                      "yes" if r["online"] else "no", r["balance"] or "-", str(r["alarm_level"]),
                      r["supply"], r["today_kwh"], r["today_m3"], r["today_yuan"])
    console.print(table)


@ops_app.command("tariff")
def tariff(ctx: typer.Context, file: Path = typer.Argument(..., help="Tariff YAML or JSON")
           ) -> None:
    """Upload a tariff version (validated by the billing core)."""
    kind = "application/json" if file.suffix == ".json" else "application/yaml"
    show(client(ctx).json("POST", "/tariffs", content=file.read_bytes(),
                          headers={"Content-Type": kind}))


@ops_app.command("finance")
def finance(ctx: typer.Context, report: str = typer.Argument(..., help="orders or income"),
            start: str = typer.Option(None, "--from", help="First day YYYY-MM-DD"),
            end: str = typer.Option(None, "--to", help="Last day YYYY-MM-DD"),
            period: str = typer.Option("day", help="income: day, month, year or span"),
            fmt: str = typer.Option("json", "--format", help="json, csv or xlsx"),
            output: Path = typer.Option(None, "-o", help="Write the export to this file")
            ) -> None:
    """Orders or income; exports as CSV or XLSX."""
    params = {k: v for k, v in {"from": start, "to": end, "format": fmt}.items() if v}
    if report == "income":
        params["period"] = period
    response = client(ctx).call("GET", f"/finance/{report}", params=params)
    if output is not None:
        output.write_bytes(response.content)
        typer.echo(f"wrote {output} ({len(response.content)} bytes)")
    elif fmt == "json":
        show(response.json())
    else:
        sys.stdout.buffer.write(response.content)


def _watch(api: Client, batch_id: str, timeout_s: float) -> dict[str, Any]:
    """Poll a batch with a progress bar until it is finished; return the last answer."""
    deadline = time.monotonic() + timeout_s
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("failed {task.fields[failed]}"), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task(f"batch {batch_id}", total=None, failed=0)
        while True:
            data = api.json("GET", f"/batches/{batch_id}", params={"limit": 1})
            done = data["progress"]
            progress.update(task, total=done["total"], completed=done["finished"],
                            failed=done["failed"])
            if data["status"] in ("done", "cancelled") or time.monotonic() > deadline:
                return data
            time.sleep(0.5)


@batch_app.command("run")
def batch_run(ctx: typer.Context, operation: str = typer.Argument(
        ..., help="topup, set_tariff, disconnect, reconnect or set_thresholds"),
        account: list[str] = typer.Option([], help="Account id, repeatable"),
        meter: list[str] = typer.Option([], help="Meter id, repeatable"),
        targets_file: Path = typer.Option(None, help="One id per line (accounts unless "
                                                     "--by-meter)"),
        by_meter: bool = typer.Option(False, help="--targets-file holds meter ids"),
        amount: str = typer.Option(None, help="topup: yuan per account"),
        tariff_id: str = typer.Option(None, help="set_tariff"),
        thresholds: str = typer.Option(None, help="set_thresholds: 50,20,10"),
        run_at: str = typer.Option(None, help="ISO 8601 with offset; default now"),
        batch_id: str = typer.Option(None, help="Makes creation idempotent"),
        wait: bool = typer.Option(True, help="Show progress until done"),
        timeout: float = typer.Option(3600, help="Seconds to wait at most")) -> None:
    """Create a batch over accounts or meters and follow its progress."""
    listed = [] if targets_file is None else [
        line.strip() for line in targets_file.read_text().splitlines() if line.strip()]
    accounts = account + ([] if by_meter else listed)
    meters = meter + (listed if by_meter else [])
    body: dict[str, Any] = {"operation": operation, "account_ids": accounts,
                            "meter_ids": meters}
    for name, value in (("amount", amount), ("tariff_id", tariff_id), ("run_at", run_at),
                        ("batch_id", batch_id)):
        if value is not None:
            body[name] = value
    if thresholds is not None:
        body["thresholds"] = [t.strip() for t in thresholds.split(",")]
    api = client(ctx)
    created = api.json("POST", "/batches", json=body)
    typer.echo(f"batch {created['batch_id']}: {created['progress']['total']} item(s), "
               f"run at {created['run_at']}")
    if wait:
        final = _watch(api, created["batch_id"], timeout)
        p = final["progress"]
        typer.echo(f"batch {final['batch_id']} {final['status']}: {p['done']} done, "
                   f"{p['failed']} failed, {p['pending']} pending of {p['total']}")
        if p["failed"]:
            raise typer.Exit(1)


@batch_app.command("show")
def batch_show(ctx: typer.Context, batch_id: str,
               wait: bool = typer.Option(False, help="Follow it with a progress bar"),
               as_json: bool = typer.Option(False, "--json")) -> None:
    """A batch's progress and items."""
    api = client(ctx)
    if wait:
        _watch(api, batch_id, 3600)
    data = api.json("GET", f"/batches/{batch_id}")
    if as_json:
        show(data)
    else:
        p = data["progress"]
        typer.echo(f"batch {batch_id} {data['status']}: {p['done']} done, {p['failed']} "
                   f"failed, {p['pending']} pending of {p['total']}")
