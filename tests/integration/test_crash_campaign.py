"""Workers stopped and killed in the middle of a stream lose nothing and double nothing.

The short version of bench/crash_campaign.py (figures in docs/benchmarks.md): a steady
stream with top-ups arriving through the payment path and accounts being cut off, while
random worker processes (processors or the sink) are stopped or killed and started again.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from bench.crash_campaign import Campaign
from meterflow.settings import Settings

from .conftest import PORT_BASE, env_of

pytestmark = pytest.mark.integration


def campaign(stack: Settings, tmp_path: Path, processors: int) -> Campaign:
    env = {**env_of(stack), "METERFLOW_WORKER_WEB_PORT": str(PORT_BASE + 600),
           "METERFLOW_METRICS_PERIOD_S": "0"}
    return Campaign(stack, env, tmp_path / "workers.log", accounts=40, processors=processors)


def finish(run: Campaign, log: Path) -> None:
    run.stop_all()
    print("\n".join(run.report.kills))
    print("\n".join(log.read_text(errors="replace").splitlines()[-40:]))


def test_five_sigkills_of_random_workers_reconcile_to_the_fen(stack: Settings,
                                                              tmp_path: Path) -> None:
    run = campaign(stack, tmp_path, processors=2)
    try:
        report = run.run_campaign(rate=60, seconds=75, kills=5)
    finally:
        finish(run, tmp_path / "workers.log")
    assert len(report.kills) == 5
    assert report.problems == []


def test_ten_sigterms_mid_stream_end_within_the_grace_period_and_lose_nothing(
        stack: Settings, tmp_path: Path) -> None:
    run = campaign(stack, tmp_path, processors=1)
    try:
        report = run.run_campaign(rate=60, seconds=90, kills=10, how=signal.SIGTERM)
    finally:
        finish(run, tmp_path / "workers.log")
    assert len(report.kills) == 10
    assert report.problems == []
