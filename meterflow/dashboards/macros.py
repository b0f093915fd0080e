"""A panel's SQL as Grafana sends it to PostgreSQL: template variables, then macros.

Written from Grafana's documented behaviour, so the boards can be run against the real
database without a Grafana server (``meterflow dashboards check --run`` and the tests):

1. The browser replaces template variables: ``$var``, ``${var}``, ``[[var]]`` and
   ``${var:format}``. Without a format the SQL data sources quote each value of a
   multi-value or include-All variable as a literal (``'a','b'``) and only escape quotes
   of a single-value one; a custom "All" value is inserted as it is, unformatted.
   Built-ins: ``$__interval``, ``$__interval_ms``, ``$__from``, ``$__to``, ``$__range*``.
2. The server replaces ``$__interval``, ``$__interval_ms``, ``$__unixEpochFrom()`` and
   ``$__unixEpochTo()``, then every ``$__macro(args)``: times are RFC 3339 in UTC,
   ``$__timeGroup`` is ``time_bucket('Ns', col)`` on a TimescaleDB data source (``floor``
   of the epoch otherwise) and becomes ``$__timeGroupAlias`` when a comma follows it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


class MacroError(ValueError):
    """A macro Grafana would refuse (unknown name, missing argument, bad interval)."""


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a time range needs timezone-aware instants")
        if self.end < self.start:
            raise ValueError("a time range ends after it starts")

    @property
    def span(self) -> timedelta:
        return self.end - self.start


@dataclass(frozen=True)
class Selection:
    """A variable's current value as Grafana holds it: one or more values, or "All"."""

    values: tuple[str, ...]
    multi: bool = False
    include_all: bool = False
    all: bool = False
    all_value: str | None = None


# Grafana's variable syntax: $name, [[name(:fmt)]], ${name(.field)(:fmt)}
VARIABLE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}")
MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^)]*)\)")


def used_variables(text: str) -> set[str]:
    """Names of the template variables a text refers to (macros and built-ins left out)."""
    names = set()
    for m in VARIABLE.finditer(text):
        name = m.group(1) or m.group(2) or m.group(4)
        if not name.startswith("__"):
            names.add(name)
    return names


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def format_value(sel: Selection, fmt: str | None) -> str:
    if sel.all and sel.all_value is not None and fmt not in ("text", "percentencode",
                                                              "queryparam"):
        return sel.all_value  # a custom "All" value skips formatting
    values = sel.values
    as_list = sel.multi or sel.all
    if fmt is None:
        if as_list:
            return ",".join(_literal(v) for v in values)
        value = values[0] if values else ""
        return _literal(value) if sel.include_all else value.replace("'", "''")
    if fmt in ("csv", "raw"):
        return ",".join(values)
    if fmt == "sqlstring":
        return ",".join(_literal(v) for v in values)
    if fmt == "singlequote":
        return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
    if fmt == "doublequote":
        return ",".join('"' + v.replace('"', '\\"') + '"' for v in values)
    if fmt == "pipe":
        return "|".join(values)
    raise MacroError(f"variable format {fmt!r} is not supported here")


def format_interval(interval: timedelta) -> str:
    """Grafana's short form: the largest whole unit (y, d, h, m, s, ms), truncated."""
    ms = int(interval / timedelta(milliseconds=1))
    for unit, size in (("y", 365 * 86_400_000), ("d", 86_400_000), ("h", 3_600_000),
                       ("m", 60_000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            return f"{ms // size}{unit}"
    return "1ms"


_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_interval(text: str) -> timedelta:
    m = re.fullmatch(r"\s*(\d+)\s*(ms|s|m|h|d|w)\s*", text.strip("'"))
    if not m:
        raise MacroError(f"error parsing interval {text}")
    return timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])


# Nice steps for the interval of a graph: (below this many ms, use this many ms).
_STEPS = ((10, 1), (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500),
          (1500, 1000), (3500, 2000), (7500, 5000), (12_500, 10_000), (17_500, 15_000),
          (25_000, 20_000), (45_000, 30_000), (90_000, 60_000), (210_000, 120_000),
          (450_000, 300_000), (750_000, 600_000), (1_050_000, 900_000),
          (1_500_000, 1_200_000), (2_700_000, 1_800_000), (5_400_000, 3_600_000),
          (9_000_000, 7_200_000), (16_200_000, 10_800_000), (24_300_000, 21_600_000),
          (54_000_000, 43_200_000), (129_600_000, 86_400_000),
          (907_200_000, 604_800_000), (1_209_600_000, 2_592_000_000))


def interval_for(rng: TimeRange, max_data_points: int = 1000,
                 min_interval: timedelta = timedelta(minutes=1)) -> timedelta:
    """The graph interval Grafana picks: range / data points rounded to a nice step, not
    below the data source's minimum (``timeInterval``, 1m for MeterFlow's)."""
    raw = rng.span / timedelta(milliseconds=1) / max(max_data_points, 1)
    step = next((ms for below, ms in _STEPS if raw < below), 31_536_000_000)
    return max(timedelta(milliseconds=step), min_interval)


def rfc3339(t: datetime) -> str:
    """Go's RFC3339Nano in UTC: 'Z', fractional seconds without trailing zeros."""
    t = t.astimezone(UTC)
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        text += "." + f"{t.microsecond:06d}".rstrip("0")
    return text + "Z"


def _epoch_ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def interpolate(sql: str, selections: Mapping[str, Selection], rng: TimeRange,
                interval: timedelta) -> str:
    """Step 1, the browser: template variables and built-ins; unknown names stay as they
    are (PostgreSQL then refuses the query)."""
    builtins = {"__interval": format_interval(interval),
                "__interval_ms": str(int(interval / timedelta(milliseconds=1))),
                "__from": str(_epoch_ms(rng.start)), "__to": str(_epoch_ms(rng.end)),
                "__range": format_interval(rng.span),
                "__range_s": str(int(rng.span.total_seconds())),
                "__range_ms": str(int(rng.span / timedelta(milliseconds=1)))}

    def replace(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(6)
        if name in builtins:
            return builtins[name]
        sel = selections.get(name)
        if sel is None:
            return m.group(0)
        if m.group(5):
            raise MacroError(f"${{{name}.{m.group(5)}}}: field paths are not supported here")
        return format_value(sel, fmt)

    return VARIABLE.sub(replace, sql)


def _time_group(args: list[str], timescaledb: bool) -> str:
    if len(args) < 2:
        raise MacroError("macro __timeGroup needs time column and interval and optional "
                         "fill value")
    seconds = parse_interval(args[1]).total_seconds()
    if timescaledb:
        return f"time_bucket('{seconds:.3f}s',{args[0]})"
    return f"floor(extract(epoch from {args[0]})/{seconds:g})*{seconds:g}"


def _macro(name: str, args: list[str], rng: TimeRange, timescaledb: bool) -> str:
    start, end = rfc3339(rng.start), rfc3339(rng.end)
    column = args[0] if args and args[0] else None
    if name in ("__time", "__timeEpoch", "__timeFilter", "__unixEpochFilter",
                "__unixEpochNanoFilter") and column is None:
        raise MacroError(f"missing time column argument for macro {name}")
    s_epoch, e_epoch = int(rng.start.timestamp()), int(rng.end.timestamp())
    s_nano, e_nano = s_epoch * 10**9 + rng.start.microsecond * 1000, \
        e_epoch * 10**9 + rng.end.microsecond * 1000
    match name:
        case "__time":
            return f'{column} AS "time"'
        case "__timeEpoch":
            return f'extract(epoch from {column}) as "time"'
        case "__timeFilter":
            return f"{column} BETWEEN '{start}' AND '{end}'"
        case "__timeFrom":
            return f"'{start}'"
        case "__timeTo":
            return f"'{end}'"
        case "__timeGroup":
            return _time_group(args, timescaledb)
        case "__timeGroupAlias":
            return _time_group(args, timescaledb) + ' AS "time"'
        case "__unixEpochFilter":
            return f"{column} >= {s_epoch} AND {column} <= {e_epoch}"
        case "__unixEpochNanoFilter":
            return f"{column} >= {s_nano} AND {column} <= {e_nano}"
        case "__unixEpochNanoFrom":
            return str(s_nano)
        case "__unixEpochNanoTo":
            return str(e_nano)
        case "__unixEpochGroup" | "__unixEpochGroupAlias":
            if len(args) < 2:
                raise MacroError(f"macro {name} needs time column and interval")
            sec = parse_interval(args[1]).total_seconds()
            alias = ' AS "time"' if name.endswith("Alias") else ""
            return f"floor(({args[0]})/{sec:g})*{sec:g}{alias}"
    raise MacroError(f'unknown macro "{name}"')


def expand_macros(sql: str, rng: TimeRange, interval: timedelta,
                  timescaledb: bool = True) -> str:
    """Step 2, the server: global substitutions, then ``$__macro(args)``."""
    sql = sql.replace("$__interval_ms", str(int(interval / timedelta(milliseconds=1))))
    sql = sql.replace("$__interval", format_interval(interval))
    sql = sql.replace("$__unixEpochFrom()", str(int(rng.start.timestamp())))
    sql = sql.replace("$__unixEpochTo()", str(int(rng.end.timestamp())))
    original = sql

    def replace(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == "__timeGroup":
            # as Grafana: a comma right after the (first) same call means the old form
            at = original.find(m.group(0))
            after = at + len(m.group(0))
            if at >= 0 and after < len(original) and original[after] == ",":
                name = "__timeGroupAlias"
        args = [a.strip(" ") for a in m.group(2).split(",")]
        return _macro(name, args, rng, timescaledb)

    return MACRO.sub(replace, sql)


def expand(sql: str, rng: TimeRange, selections: Mapping[str, Selection],
           interval: timedelta | None = None, timescaledb: bool = True) -> str:
    """The SQL PostgreSQL receives for a panel query."""
    interval = interval or interval_for(rng)
    return expand_macros(interpolate(sql, selections, rng, interval), rng, interval,
                         timescaledb)
