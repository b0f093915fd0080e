"""Helpers of the web console's browser tests: a site with rooms, staff with passwords, a
signed-in browser page, and the accessibility checks every page must pass."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from meterflow.settings import Settings

from .api_support import uid
from .conftest import REPO, ApiSession, env_of

PASSWORD = "correct horse battery"
FLAT = ("id: {id}\nname: Flat one yuan\ncommodity: electricity\nunit: kWh\ncurrency: CNY\n"
        "timezone: Asia/Shanghai\nprice: 1\n")


@dataclass
class Site:
    """A site with one building, floors 1 and 2; rooms per floor; a flat tariff."""

    site: str
    building: str
    floors: dict[int, str]
    rooms: dict[str, str]  # room name -> room id
    tariff: str
    users: dict[str, str] = field(default_factory=dict)  # role -> user name


def set_password(stack: Settings, name: str, password: str = PASSWORD) -> None:
    """`meterflow user password NAME --stdin` on the server, as an admin would."""
    done = subprocess.run([sys.executable, "-m", "meterflow.cli", "user", "password", name,
                           "--stdin"], input=password + "\n", cwd=REPO, env=env_of(stack),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout


def build_site(api: ApiSession, stack: Settings) -> Site:
    ids = {k: uid(k) for k in ("site", "bld", "f1", "f2")}
    site = Site(ids["site"], ids["bld"], {1: ids["f1"], 2: ids["f2"]}, {}, uid("flat"))
    with api.client("admin") as c:
        assert c.put(f"/sites/{site.site}", json={"name": "Park"}).status_code == 201
        assert c.put(f"/buildings/{site.building}",
                     json={"site_id": site.site, "name": "A"}).status_code == 201
        for level, floor in site.floors.items():
            assert c.put(f"/floors/{floor}", json={"building_id": site.building,
                                                   "level": level}).status_code == 201
        for name, level in (("101", 1), ("102", 1), ("103", 1), ("201", 2), ("202", 2)):
            room = uid(f"r{name}")
            made = c.put(f"/rooms/{room}", json={"floor_id": site.floors[level], "name": name})
            assert made.status_code == 201, made.text
            site.rooms[name] = room
        made = c.post("/tariffs", content=FLAT.format(id=site.tariff),
                      headers={"Content-Type": "application/yaml"})
        assert made.status_code == 201, made.text
        for role in ("admin", "operator", "maintenance", "finance"):
            with api.client(role) as mine:
                site.users[role] = mine.get("/me").json()["user"]
            set_password(stack, site.users[role])
    return site


def open_account(api: ApiSession, site: Site, room: str, meter: str,
                 topup: str | None = None) -> str:
    account = uid("ACC")
    with api.client("admin") as c:
        made = c.post("/accounts", json={
            "account_id": account, "name": f"Room {room}", "room_id": site.rooms[room],
            "meters": [{"meter_id": meter, "commodity": "electricity", "protocol": "mqtt"}],
            "tariffs": [site.tariff], "thresholds": ["30", "20", "10"], "overdraft": "0"})
        assert made.status_code == 201, made.text
        if topup:
            paid = c.post("/topups", json={"account_id": account, "amount": topup},
                          headers={"Idempotency-Key": uid("seed")})
            assert paid.status_code == 201, paid.text
    return account


def sign_in(browser: Any, api: ApiSession, user: str, locale: str = "en-US") -> Any:
    """A new browser context signed in as ``user`` (typing into the sign-in form)."""
    context = browser.new_context(locale=locale, accept_downloads=True,
                                  timezone_id="Asia/Shanghai",
                                  viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{api.url}/console/rooms")
    assert "/console/login" in page.url
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.press("#password", "Enter")
    page.wait_for_url("**/console/rooms")
    return page


UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
  .filter(e => !e.closest('[hidden]') && e.labels.length === 0 && !e.getAttribute('aria-label')
          && !e.getAttribute('aria-labelledby'))
  .map(e => e.id || e.name || e.outerHTML.slice(0, 80))"""

UNNAMED_BUTTONS = """() => [...document.querySelectorAll('button, a[href]')]
  .filter(e => !(e.innerText || e.getAttribute('aria-label') || '').trim())
  .map(e => e.outerHTML.slice(0, 80))"""

# A text key shown instead of its text ("room.topup"): a missing translation.
RAW_KEYS = r"""() => [...document.querySelectorAll(
    'h1, h2, h3, label, legend, button, th, a, p, dt')]
  .filter(e => !e.querySelector('code'))
  .map(e => e.innerText.trim()).filter(t => /^[a-z]+\.[a-z_.]+$/.test(t))"""


def accessible(page: Any) -> None:
    """Every control has a label and every button or link a name; no raw text keys."""
    for check in (UNLABELLED, UNNAMED_BUTTONS, RAW_KEYS):
        found = page.evaluate(check)
        assert found == [], f"{page.url}: {found}"
