"""``GET /api/v1/health`` (no authentication): 200 when the database answers, else 503;
also 503 when the property-billing scheduler of this process made no progress for a while.

Probed by Kubernetes (the Helm chart) and by the tests before they start.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["health"])


@router.get("/health", response_model=None)
def health(request: Request) -> dict[str, Any] | JSONResponse:
    try:
        with request.app.state.pool.connection(timeout=2.0) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # any failure to reach the database is "unhealthy"
        return JSONResponse({"status": "error", "database": "unreachable",
                             "detail": str(exc)[:300]}, status_code=503)
    body: dict[str, Any] = {"status": "ok", "database": "reachable"}
    billing = getattr(request.app.state, "billing", None)
    if billing is not None:
        report = billing[0].probe()
        body["billing"] = report
        if report.get("status") == "stale":
            body["status"] = "error"
            return JSONResponse(body, status_code=503)
    return body
