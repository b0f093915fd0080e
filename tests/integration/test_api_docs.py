"""docs/api.md's worked session, run as written against the real stack.

Every ```http block of the section is sent in order; `# expect N` checks the status,
`# check FIELD = VALUE` a field of the answer, `# until FIELD = VALUE` polls the request
until the field has the value, `# save NAME = PATH` keeps a value for `{NAME}` later. The
processes are the real ones: `meterflow api`, `meterflow worker`, `meterflow relay`,
`meterflow dispatch`; a meter on MQTT acknowledges the commands it receives.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest

from meterflow.broker.sync import wait_applied
from meterflow.settings import Settings
from meterflow.stack.process import terminate
from services.devices import credentials

from .conftest import REPO, ApiSession, env_of, wait_for

pytestmark = pytest.mark.integration
DOC = REPO / "docs" / "api.md"


@dataclass
class Step:
    method: str
    path: str
    headers: dict[str, str]
    body: str
    directives: list[tuple[str, str, str]] = field(default_factory=list)


def worked_session(text: str) -> list[Step]:
    section = text.split("## A worked session", 1)[1]
    steps = []
    for block in re.findall(r"```http\n(.*?)```", section, re.S):
        lines = block.rstrip("\n").split("\n")
        method, path = lines[0].split(" ", 1)
        headers: dict[str, str] = {}
        rest = lines[1:]
        while rest and rest[0].strip():
            if rest[0].startswith("#"):
                break
            name, value = rest.pop(0).split(":", 1)
            headers[name.strip()] = value.strip()
        body = "\n".join(line for line in rest if not line.startswith("#")).strip()
        directives = [tuple(re.match(r"# (\w+) (.*)$", line).groups())  # type: ignore[union-attr]
                      for line in rest if line.startswith("# ")]
        step = Step(method, path, headers, body)
        for verb, arg in directives:
            name, _, value = arg.partition(" = ")
            step.directives.append((verb, name.strip(), value.strip()))
        steps.append(step)
    return steps


def resolve(value: str, variables: dict[str, str]) -> str:
    for name, replacement in variables.items():
        value = value.replace(name, replacement)
    return value


def pick(data: Any, path: str) -> Any:
    for part in path.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def test_the_document_holds_the_session() -> None:
    steps = worked_session(DOC.read_text())
    assert [s.method for s in steps] == ["POST", "POST", "POST", "POST", "GET", "POST", "GET",
                                         "POST", "GET"]
    assert all(any(v == "expect" for v, _, _ in s.directives) for s in steps)


@pytest.fixture()
def services(stack: Settings, worker: subprocess.Popen[bytes], tmp_path: Path
             ) -> Iterator[None]:
    procs = []
    for name, args in (("relay", ["relay"]), ("dispatch", ["dispatch"])):
        with open(tmp_path / f"{name}.log", "wb") as log:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "meterflow.cli", *args], env=env_of(stack), stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO))
    yield
    for proc in procs:
        terminate(proc.pid, grace_s=15)


@pytest.fixture()
def meter(stack: Settings, db: psycopg.Connection) -> Iterator[list[str]]:
    """DOC-101-E on MQTT, registered with its own credential before the session opens its
    account (which takes the registered meter over): applies every command and
    acknowledges it."""
    db.execute("INSERT INTO meters (meter_id, commodity, protocol) VALUES "
               "('DOC-101-E', 'electricity', 'mqtt') ON CONFLICT DO NOTHING")
    with db.transaction():
        password = credentials.create(db, credentials.Device("meter", "DOC-101-E"),
                                      "tests").password
    assert wait_applied(db) is not None
    applied: list[str] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="doc-meter",
                         protocol=mqtt.MQTTv5)
    client.username_pw_set("DOC-101-E", password)

    def on_message(_c: Any, _u: Any, message: Any) -> None:
        command = json.loads(message.payload)
        applied.append(command["action"])
        client.publish("meters/DOC-101-E/acks", json.dumps({
            "command_id": command["command_id"], "status": "applied",
            "detail": f"{command['action']} done"}), qos=1)

    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe("meters/DOC-101-E/commands", qos=1)
    client.connect(stack.mqtt_host, stack.mqtt_port)
    client.loop_start()
    yield applied
    client.loop_stop()
    client.disconnect()


def test_worked_session_runs_as_documented(api: ApiSession, services: None,
                                           meter: list[str]) -> None:
    saved: dict[str, str] = {}
    tokens = {"$TOKEN": api.tokens["operator"], "$ADMIN": api.tokens["admin"]}
    with api.client(None) as http:
        for step in worked_session(DOC.read_text()):
            path = step.path.removeprefix("/api/v1").format(**saved)
            headers = {k: resolve(v, tokens) for k, v in step.headers.items()}

            def send(step: Step = step, path: str = path,
                     headers: dict[str, str] = headers) -> Any:
                return http.request(step.method, path, headers=headers,
                                    content=step.body.encode() if step.body else None)

            response = send()
            for verb, name, value in step.directives:
                where = f"{step.method} {step.path}"
                if verb == "expect":
                    assert response.status_code == int(name), (where, response.text)
                elif verb == "until":
                    response = wait_for(
                        lambda s=send, n=name, v=value: (r := s()).status_code == 200
                        and str(pick(r.json(), n)) == v and r, 90, f"{where}: {name} = {value}")
                elif verb == "check":
                    assert str(pick(response.json(), name)) == value, (where, response.text)
                elif verb == "save":
                    saved[name] = str(pick(response.json(), value))
    # Delivery is at least once; a meter is idempotent on the command id.
    assert list(dict.fromkeys(meter)) == ["disconnect", "reconnect"]
