"""One router per resource group, in the order they are mounted under ``/api/v1``."""

from __future__ import annotations

from fastapi import APIRouter

from meterflow.api.routers import (
    accounts,
    activity,
    audit_log,
    batches,
    bills,
    charges,
    control,
    devices,
    drafts,
    finance,
    health,
    meters,
    monitor,
    notifications,
    payments,
    property,
    reports,
    tariff_tools,
    tariffs,
    tenant_links,
    users,
)

ROUTERS: tuple[APIRouter, ...] = (
    health.router, property.router, accounts.router, meters.router, tariff_tools.router,
    tariffs.router,
    payments.router, control.router, monitor.router, batches.router, finance.router,
    reports.router, users.router, audit_log.router, notifications.router, devices.router,
    charges.router, bills.router,
    activity.router, drafts.router,
    tenant_links.router,
)
