"""YAML text to Python values with every number exact: floats become Decimal from their text.

PyYAML would turn ``0.4883`` into a binary float; a tariff price must never pass through
one. This loader keeps the scalar's text and builds a Decimal from it.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import yaml


class DecimalSafeLoader(yaml.SafeLoader):
    """SafeLoader whose floats are Decimals built from the scalar text."""


def _decimal(loader: yaml.SafeLoader, node: yaml.Node) -> Decimal:
    assert isinstance(node, yaml.ScalarNode)
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise yaml.constructor.ConstructorError(
            None, None, f"{text!r} is not a finite decimal number", node.start_mark
        ) from None
    if not value.is_finite():
        raise yaml.constructor.ConstructorError(
            None, None, f"{text!r} is not a finite decimal number", node.start_mark
        )
    return value


DecimalSafeLoader.add_constructor("tag:yaml.org,2002:float", _decimal)


def load_yaml(text: str) -> Any:
    """Parse YAML text (one document) with exact decimals."""
    return yaml.load(text, Loader=DecimalSafeLoader)  # a SafeLoader subclass
