"""Errors as the API answers them: a status and a list of ``{field, reason}``.

Every refusal names the field and the reason (docs/architecture.md, invariants): request
validation is 422, a broken domain rule 400, something missing 404, a conflict with what is
stored 409. The database refusing a row (a constraint) is mapped to 409/400 with the
constraint named; an unreachable database is 503. Nothing a client sends may end in a 500. A
request outside the caller's scope is 403 and written to the audit log (``scope.denied``)
here, after the request's own transaction rolled back. """

from __future__ import annotations

import json
import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from contracts.errors import RefusedRequest
from meterflow.api.tokens import Actor
from services.accounts.changes import Missing
from services.accounts.spec import InvalidAccount
from services.accounts.store import AccountConflict
from services.payments.request import InvalidPayment
from services.payments.store import IdempotencyConflict, UnknownAccount

log = logging.getLogger("meterflow.api")


class ApiError(Exception):
    """A refusal with its HTTP status; ``errors`` is a list of ``(field, reason)``.
    ``audit`` (actor, target) asks the app to record the refusal (``scope.denied``)."""

    audit: tuple[Actor, str] | None = None

    def __init__(self, status: int, field: str, reason: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{field}: {reason}")
        self.status = status
        self.errors = [(field, reason)]
        self.headers = headers

    @classmethod
    def many(cls, status: int, errors: list[tuple[str, str]]) -> ApiError:
        error = cls(status, *errors[0])
        error.errors = errors
        return error


def not_found(field: str, what: str) -> ApiError:
    return ApiError(404, field, f"no {what}")


def body(errors: list[tuple[str, str]]) -> dict[str, Any]:
    detail = "; ".join(f"{f}: {r}" if f else r for f, r in errors)
    return {"detail": detail, "errors": [{"field": f, "reason": r} for f, r in errors]}


class AsciiJSONResponse(JSONResponse):
    """Errors echo what was sent, which may hold lone surrogates (``"\\ud800"`` in JSON):
    escaped to ASCII they still render, where UTF-8 encoding would fail with a 500."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode()


def _answer(status: int, errors: list[tuple[str, str]],
            headers: dict[str, str] | None = None) -> JSONResponse:
    return AsciiJSONResponse(body(errors), status_code=status, headers=headers)


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


#: The account core's messages name command-line options; the API names its own fields.
CLI_FIELDS = {"--meter": "meters", "--tariff": "tariffs", "--thresholds": "thresholds",
              "--overdraft": "overdraft", "ACCOUNT": "account_id", "--name": "name",
              "--postpaid": "billing_mode"}


def _split(message: str) -> tuple[str, str]:
    """``(field, reason)`` from the domain's ``"field: reason"`` messages."""
    field, sep, reason = message.partition(": ")
    if not sep:
        return "", message
    first = field.split(" ")[0]
    if first in CLI_FIELDS:
        rest = field[len(first):].strip()
        return CLI_FIELDS[first], f"{rest}: {reason}" if rest else reason
    return (field, reason) if " " not in field else ("", message)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every refusal into ``{detail, errors}``."""

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        if exc.audit is not None:
            from starlette.concurrency import run_in_threadpool

            await run_in_threadpool(_audit_refusal, request, exc)
        return _answer(exc.status, exc.errors, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for error in exc.errors():
            reason = str(error.get("msg", "invalid")).removeprefix("Value error, ")
            if error.get("type") == "json_invalid":
                errors.append(("body", f"not valid JSON: {reason}"))
            else:
                errors.append((_loc(error.get("loc", ())), reason))
        return _answer(422, errors or [("body", "invalid request")])

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _answer(exc.status_code, [("", str(exc.detail))], getattr(exc, "headers", None))

    @app.exception_handler(InvalidPayment)
    async def _payment(_: Request, exc: InvalidPayment) -> JSONResponse:
        return _answer(400, [(exc.field, exc.reason)])

    @app.exception_handler(UnknownAccount)
    async def _unknown(_: Request, exc: UnknownAccount) -> JSONResponse:
        return _answer(404, [("account_id", f"no account {exc.account_id!r}")])

    @app.exception_handler(IdempotencyConflict)
    async def _conflict(_: Request, exc: IdempotencyConflict) -> JSONResponse:
        return _answer(409, [("Idempotency-Key", str(exc).partition(": ")[2])])

    @app.exception_handler(InvalidAccount)
    async def _account(_: Request, exc: InvalidAccount) -> JSONResponse:
        return _answer(400, [_split(str(exc))])

    @app.exception_handler(AccountConflict)
    async def _account_conflict(_: Request, exc: AccountConflict) -> JSONResponse:
        return _answer(409, [_split(str(exc))])

    @app.exception_handler(Missing)
    async def _missing(_: Request, exc: Missing) -> JSONResponse:
        return _answer(404, [(exc.field, exc.reason)])

    @app.exception_handler(RefusedRequest)
    async def _refused(_: Request, exc: RefusedRequest) -> JSONResponse:
        """Users, tokens, device credentials (meterflow/api/tokens.py, services/devices/)."""
        return _answer(exc.status, [(exc.field, exc.reason)])

    @app.exception_handler(psycopg.errors.IntegrityError)
    async def _integrity(_: Request, exc: psycopg.errors.IntegrityError) -> JSONResponse:
        diag = exc.diag
        field = diag.column_name or diag.constraint_name or ""
        if isinstance(exc, psycopg.errors.ForeignKeyViolation):
            reason = (diag.message_detail or str(exc)).strip()
            return _answer(409, [(field, f"refers to or is referred by a missing or "
                                         f"dependent row: {reason}")])
        if isinstance(exc, psycopg.errors.UniqueViolation):
            return _answer(409, [(field, (diag.message_detail or "already exists").strip())])
        return _answer(400, [(field, (diag.message_primary or str(exc)).strip())])

    @app.exception_handler(psycopg.OperationalError)
    async def _down(_: Request, exc: psycopg.OperationalError) -> JSONResponse:
        log.warning("database unavailable: %s", exc)
        return _answer(503, [("", "database unavailable; nothing was changed, retry later")])


def _audit_refusal(request: Request, exc: ApiError) -> None:
    """Record a refused request (``scope.denied``) in a transaction of its own."""
    from meterflow.api import audit

    assert exc.audit is not None
    actor, target = exc.audit
    rid = getattr(request.state, "request_id", "") or ""
    try:
        with request.app.state.pool.connection(timeout=5) as conn, conn.transaction():
            audit.record(conn, actor, str(rid), "scope.denied", target, None,
                         {"reason": exc.errors[0][1], "method": request.method,
                          "path": request.url.path[:300]})
    except psycopg.Error:
        log.exception("could not audit a refused request to %s", request.url.path)
