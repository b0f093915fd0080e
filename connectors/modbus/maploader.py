"""Reading register-map YAML files: exact numbers, clear errors.

The YAML loader turns every YAML float into a :class:`~decimal.Decimal` built from
the literal text, so no value passes through a binary float; scale factors are
normally written as strings anyway (``"0.01"``). Integers with a leading zero
(``0010``) are refused because YAML 1.1 would read them as octal: write register
addresses as hex (``0x0010``) or plain decimal. Validation errors name the file and
the field, e.g. ``quantities[2] (voltage_v).scale``.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from connectors.modbus.errors import MapError
from connectors.modbus.registermap import RegisterMap

MAPS_PACKAGE = "connectors.modbus"
MAPS_DIR = "maps"


class _ExactLoader(yaml.SafeLoader):
    """SafeLoader that keeps numbers exact: floats become Decimal, no octal ints."""


def _construct_float(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    try:
        return Decimal(text.replace("_", ""))
    except InvalidOperation:
        return text  # .inf / .nan: left as text, refused by validation


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    text = str(loader.construct_scalar(node)).replace("_", "")  # type: ignore[arg-type]
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-").lower()
    if digits.startswith("0x"):
        return sign * int(digits, 16)
    if digits.startswith("0b"):
        return sign * int(digits[2:], 2)
    if len(digits) > 1 and digits.startswith("0"):
        raise yaml.constructor.ConstructorError(
            None,
            None,
            f"number {text!r} has a leading zero (YAML would read it as octal); "
            "write it as hex (0x...) or without the leading zero",
            node.start_mark,
        )
    if ":" in digits:  # YAML 1.1 base-60
        return text
    return sign * int(digits, 10)


_ExactLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)
_ExactLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _field_path(loc: tuple[int | str, ...], raw: Any) -> str:
    """Render a pydantic location, naming quantities: ``quantities[2] (voltage_v).scale``."""
    parts: list[str] = []
    node = raw
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1] if parts else ''}[{item}]"]
            node = node[item] if isinstance(node, list) and item < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                parts[-1] += f" ({node['name']})"
        else:
            if item in ("register", "coil", "none"):  # discriminated union tag
                continue
            parts.append(item)
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts)


def parse_map(data: Any, source: str) -> RegisterMap:
    """Validate already-loaded map data; ``source`` names the file in errors."""
    if not isinstance(data, dict):
        raise MapError(source, [("", "the file must hold a mapping (key: value) at top level")])
    try:
        return RegisterMap.model_validate(data)
    except ValidationError as exc:
        problems = [
            (_field_path(tuple(err["loc"]), data), err["msg"].removeprefix("Value error, "))
            for err in exc.errors()
        ]
        raise MapError(source, problems) from None


def read_map_file(path: Path) -> RegisterMap:
    """Load and validate one YAML map file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MapError(str(path), [("", f"cannot read file: {exc.strerror or exc}")]) from None
    try:
        data = yaml.load(text, Loader=_ExactLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise MapError(str(path), [("", f"not valid YAML: {exc}")]) from None
    return parse_map(data, str(path))


def _shipped_dir() -> Path:
    return Path(str(resources.files(MAPS_PACKAGE).joinpath(MAPS_DIR)))


def shipped_maps() -> list[str]:
    """Names of the register maps shipped with MeterFlow, sorted."""
    return sorted(p.stem for p in _shipped_dir().glob("*.yaml"))


def load_map(name_or_path: str | Path) -> RegisterMap:
    """Load a shipped map by name (``acrel-ddsy1352``) or any map file by path."""
    text = str(name_or_path)
    path = Path(text)
    if isinstance(name_or_path, Path) or path.suffix in (".yaml", ".yml") or path.exists():
        return read_map_file(path)
    shipped = _shipped_dir() / f"{text}.yaml"
    if not shipped.is_file():
        known = ", ".join(shipped_maps())
        raise MapError(text, [("", f"no shipped map of that name (known: {known})")])
    return read_map_file(shipped)
