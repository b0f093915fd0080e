"""One router per resource group, in the order they are mounted under ``/api/v1``."""

from __future__ import annotations

from fastapi import APIRouter

from meterflow.api.routers import (
    accounts,
    audit_log,
    batches,
    control,
    devices,
    finance,
    health,
    meters,
    monitor,
    notifications,
    payments,
    property,
    reports,
    tariffs,
    tenant_links,
    users,
)

ROUTERS: tuple[APIRouter, ...] = (
    health.router, property.router, accounts.router, meters.router, tariffs.router,
    payments.router, control.router, monitor.router, batches.router, finance.router,
    reports.router, users.router, audit_log.router, notifications.router, devices.router,
    tenant_links.router,
)
