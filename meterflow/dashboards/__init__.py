"""Grafana boards: definitions, the macro expander, checks, provisioning and push."""

from __future__ import annotations

from meterflow.dashboards.boards_ops import ALARMS, PIPELINE, QUALITY, ROOMS
from meterflow.dashboards.boards_reports import ENERGY, FINANCE
from meterflow.dashboards.spec import Board

#: Every board, in the order they are listed and pushed. File name: the uid without prefix.
BOARDS: tuple[Board, ...] = (ROOMS, ENERGY, FINANCE, ALARMS, QUALITY, PIPELINE)


def file_name(board: Board) -> str:
    return board.uid.removeprefix("meterflow-") + ".json"
