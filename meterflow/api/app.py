"""The FastAPI application: routers under ``/api/v1``, error handlers, the pool, the runner.

``create_app`` is the factory (``meterflow api`` serves it with uvicorn). On start it opens
the connection pool lazily and starts the background runner that executes due batches
(:mod:`meterflow.api.runner`) and the property-billing scheduler
(:mod:`services.property.scheduler`, every ``METERFLOW_BILLING_PERIOD_S``); on stop it
stops both after the work in hand.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles

from meterflow import console
from meterflow.api import errors
from meterflow.api.db import make_pool
from meterflow.api.routers import ROUTERS
from meterflow.api.runner import Runner
from meterflow.api.sessions import SessionPolicy
from meterflow.api.throttle import ThrottlePolicy
from meterflow.settings import Settings
from meterflow.tenant import router as tenant
from meterflow.tenant.gateways import configured_gateways
from services.property.scheduler import Scheduler, SchedulerConfig

log = logging.getLogger("meterflow.api")
PREFIX = "/api/v1"
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def _billing(settings: Settings) -> tuple[Scheduler, threading.Thread] | None:
    """The property-billing scheduler as a thread of this process (services/property)."""
    if settings.billing_period_s == 0:
        return None
    scheduler = Scheduler(settings.dsn, SchedulerConfig(
        period_s=settings.billing_period_s, billing_day=settings.billing_day,
        due_days=settings.billing_due_days))
    thread = threading.Thread(target=scheduler.run, name="billing-scheduler", daemon=True)
    thread.start()
    return scheduler, thread


def create_app(settings: Settings, *, run_batches: bool = True) -> FastAPI:
    pool = make_pool(settings.dsn)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool.open(wait=False)
        runner = Runner(pool) if run_batches else None
        if runner is not None:
            runner.start()
        app.state.runner = runner
        billing = _billing(settings) if run_batches else None
        app.state.billing = billing
        try:
            yield
        finally:
            if runner is not None:
                runner.stop()
            if billing is not None:
                billing[0].stop.set()
                billing[1].join(timeout=30)
            pool.close()

    app = FastAPI(
        title="MeterFlow operators' API", version="1.0.0", lifespan=lifespan,
        openapi_url=f"{PREFIX}/openapi.json", docs_url=f"{PREFIX}/docs", redoc_url=None,
        description="Accounts, meters, tariffs, money, control, monitoring, batches, finance "
                    "and energy reports. Amounts are yuan decimal strings (at most 2 places). "
                    "See docs/api.md.")
    app.state.pool = pool
    app.state.settings = settings
    app.state.throttle = ThrottlePolicy(settings.api_auth_max_failures,
                                        settings.api_auth_window_s, settings.api_auth_block_s)
    app.state.sessions = SessionPolicy(settings.console_idle_timeout_s,
                                       settings.console_session_max_s)
    errors.install(app)

    @app.middleware("http")
    async def request_ids(request: Request,
                          call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        given = request.headers.get("X-Request-Id", "")
        rid = given if REQUEST_ID.fullmatch(given) else str(uuid.uuid4())
        request.state.request_id = rid
        response = await call_next(request)
        response.headers["X-Request-Id"] = rid
        return response

    for router in ROUTERS:
        app.include_router(router, prefix=PREFIX)
    console.install(app, settings)
    # The tenants' pages and the gateways' notifications (docs/tenant.md), apart from /api.
    app.state.gateways = configured_gateways(settings)
    app.mount("/t/static", StaticFiles(directory=tenant.HERE / "static"), name="tenant-static")
    app.include_router(tenant.router)
    return app
