"""The tenants' pages and the gateways' notifications under ``/t`` (docs/tenant.md).

Thin: a link token opens one account (services/tenant/links.py); an order is stored, then
the tenant goes to the gateway (services/tenant/orders.py); a notification is verified by
its gateway, applied once, and answered as the gateway wants: WeChat Pay 204 (anything
else non-2xx makes it retry), Alipay ``success`` (anything else makes it retry). Every
notification is kept with its raw bytes and outcome; refusals are logged.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import psycopg
from fastapi import APIRouter, Form, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from connectors.gateways.clients import Gateway
from connectors.gateways.model import GatewayError, GatewayRefusal
from contracts.money import yuan_text
from meterflow.settings import Settings
from meterflow.tenant.texts import texts
from services.payments.request import InvalidPayment, parse_yuan
from services.tenant import links, orders
from services.tenant.view import tenant_view

log = logging.getLogger("meterflow.tenant")
# httpx logs every request's URL at INFO; WeChat's OAuth token exchange carries the app
# secret in its query string, so those URLs must never reach the logs.
logging.getLogger("httpx").setLevel(logging.WARNING)
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.filters["yuan"] = yuan_text
router = APIRouter(prefix="/t", include_in_schema=False)
PRIVATE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
           "X-Content-Type-Options": "nosniff"}


def _lang(request: Request) -> str:
    return "en" if request.query_params.get("lang") == "en" else "zh"


def _pool(request: Request) -> Any:
    return request.app.state.pool


def _gateways(request: Request) -> dict[str, Gateway]:
    found: dict[str, Gateway] = request.app.state.gateways
    return found


def _refused_link(request: Request) -> Response:
    words = texts(_lang(request))
    return HTMLResponse(f'<!doctype html><meta charset="utf-8"><meta name="viewport" '
                        f'content="width=device-width"><p id="invalid">{words["link_invalid"]}'
                        f"</p>", 404, headers=PRIVATE)


def _channels(request: Request, gateways: dict[str, Gateway]) -> list[str]:
    """Gateways offered: inside WeChat only WeChat (JSAPI once signed in), inside Alipay
    only Alipay, elsewhere both."""
    agent = request.headers.get("user-agent", "")
    names = sorted(gateways)
    if "MicroMessenger" in agent:
        return [n for n in names if n == "wechat"]
    if "AlipayClient" in agent:
        return [n for n in names if n == "alipay"]
    return names


@router.get("/{token}", response_class=HTMLResponse)
def page(token: str, request: Request) -> Response:
    with _pool(request).connection() as conn:
        try:
            link = links.resolve(conn, token)
        except links.LinkRefused:
            return _refused_link(request)
        view = tenant_view(conn, link.account_id)
        bound = conn.execute("SELECT 1 FROM tenant_openids WHERE link_id = %s LIMIT 1",
                             (link.link_id,)).fetchone() is not None
    settings: Settings = request.app.state.settings
    lang = _lang(request)
    presets = [p.strip() for p in settings.tenant_presets_yuan.split(",") if p.strip()]
    context = {"view": view, "t": texts(lang), "lang": lang, "token": token,
               "presets": presets, "gateways": _channels(request, _gateways(request)),
               "pending": request.query_params.get("order", ""), "bound": bound,
               "signin": bool(settings.wechat_app_secret and settings.wechat_appid),
               "other_lang": "zh" if lang == "en" else "en"}
    return templates.TemplateResponse(request, "page.html", context, headers=PRIVATE)


@router.post("/{token}/orders")
def start_order(token: str, request: Request, amount: str = Form(...),
                gateway: str = Form(...)) -> Response:
    settings: Settings = request.app.state.settings
    gw = _gateways(request).get(gateway)
    lang = _lang(request)
    with _pool(request).connection() as conn:
        try:
            link = links.resolve(conn, token)
        except links.LinkRefused:
            return _refused_link(request)
        if gw is None:
            return JSONResponse({"errors": [{"field": "gateway", "reason":
                                             f"{gateway!r} is not offered"}]}, 400)
        try:
            fen = parse_yuan(amount, "amount")
            openid_row = conn.execute(
                "SELECT openid FROM tenant_openids WHERE link_id = %s AND appid = %s LIMIT 1",
                (link.link_id, gw.app_id)).fetchone()
            in_wechat = "MicroMessenger" in request.headers.get("user-agent", "")
            if in_wechat and gateway == "wechat" and openid_row is None \
                    and settings.wechat_app_secret:
                # H5 payment does not open inside WeChat: sign in first, then JSAPI.
                return RedirectResponse(f"/t/{quote(token)}/wechat", 303, headers=PRIVATE)
            channel = ("jsapi" if in_wechat and openid_row else "h5") \
                if gateway == "wechat" else "wap"
            order = orders.create_order(
                conn, gateway, channel, link.account_id, fen, gw.merchant_id, gw.app_id,
                link_id=link.link_id, openid=openid_row[0] if openid_row else "",
                query_after=timedelta(seconds=settings.order_query_after_s),
                expires_after=timedelta(seconds=settings.order_expire_s))
        except (InvalidPayment, orders.OrderRefused) as exc:
            return JSONResponse({"errors": [{"field": exc.field, "reason": exc.reason}]}, 400)
    back = (f"{settings.tenant_base_url.rstrip('/')}/t/{token}?"
            f"{urlencode({'order': order.order_no, 'lang': lang})}")
    client = request.client.host if request.client else "127.0.0.1"
    try:
        start = gw.start(order.order_no, order.amount_fen, f"MeterFlow {link.account_id}",
                         order.channel, back, client, openid_row[0] if openid_row else "")
    except GatewayError as exc:
        # The order stays stored; the settle service asks the gateway about it later.
        log.warning("order %s: the gateway did not start the payment: %s", order.order_no, exc)
        return JSONResponse({"errors": [{"field": "gateway", "reason": "the gateway did not "
                                         "answer; try again"}]}, 502)
    if start.jsapi is not None:
        return templates.TemplateResponse(request, "jsapi.html", {
            "params": start.jsapi, "back": back, "t": texts(lang)}, headers=PRIVATE)
    return RedirectResponse(start.url, 303, headers=PRIVATE)


@router.get("/{token}/wechat")
def wechat_signin(token: str, request: Request) -> Response:
    """Send the tenant to WeChat's OAuth (snsapi_base) to bind their openid."""
    settings: Settings = request.app.state.settings
    with _pool(request).connection() as conn:
        try:
            links.resolve(conn, token)
        except links.LinkRefused:
            return _refused_link(request)
    back = f"{settings.tenant_base_url.rstrip('/')}/t/{token}/wechat/back"
    query = urlencode({"appid": settings.wechat_appid, "redirect_uri": back,
                       "response_type": "code", "scope": "snsapi_base",
                       "state": secrets.token_hex(8)})
    return RedirectResponse(f"{settings.wechat_oauth_url.rstrip('/')}/connect/oauth2/"
                            f"authorize?{query}#wechat_redirect", 302, headers=PRIVATE)


@router.get("/{token}/wechat/back")
def wechat_back(token: str, request: Request, code: str = "") -> Response:
    """OAuth's return: exchange the code for the openid and bind it to the link's account."""
    settings: Settings = request.app.state.settings
    secret = settings.wechat_app_secret.get_secret_value() if settings.wechat_app_secret else ""
    try:
        answer = httpx.get(f"{settings.wechat_sns_url.rstrip('/')}/sns/oauth2/access_token",
                           params={"appid": settings.wechat_appid, "secret": secret,
                                   "code": code, "grant_type": "authorization_code"},
                           timeout=10).json()
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("wechat oauth: %s", exc)
        answer = {}
    openid = str(answer.get("openid", ""))
    with _pool(request).connection() as conn:
        try:
            link = links.resolve(conn, token)
        except links.LinkRefused:
            return _refused_link(request)
        if openid:
            links.bind_openid(conn, link, settings.wechat_appid, openid)
    return RedirectResponse(f"/t/{quote(token)}", 303, headers=PRIVATE)


def _notified(request: Request, gateway: str, headers: dict[str, str], raw: bytes) -> str:
    """Verify, apply and keep one notification; the outcome (``refused: ...`` or another)."""
    gw = _gateways(request).get(gateway)
    with _pool(request).connection() as conn:
        if gw is None:
            orders.log_notification(conn, gateway, "", "refused", "gateway: not configured",
                                    headers, raw)
            return "refused: gateway: not configured"
        try:
            trade = gw.verify_notification(headers, raw, datetime.now(UTC))
        except GatewayRefusal as exc:
            log.warning("%s notification refused: %s", gateway, exc.reason)
            orders.log_notification(conn, gateway, "", "refused", exc.reason, headers, raw)
            return f"refused: {exc.reason}"
        if trade is None:
            orders.log_notification(conn, gateway, "", "ignored", "not a payment", headers, raw)
            return "ignored"
        try:
            applied = orders.apply_trade(conn, trade, "notification")
        except orders.OrderRefused as exc:
            log.warning("%s notification for %s refused: %s", gateway, trade.order_no, exc)
            orders.log_notification(conn, gateway, trade.order_no, "refused", str(exc),
                                    headers, raw)
            return f"refused: {exc}"
        orders.log_notification(conn, gateway, trade.order_no, applied.outcome, "", headers,
                                raw)
        return applied.outcome


#: A notification is about a kilobyte; a body larger than this is refused (and its first
#: bytes kept) before anything reads it.
MAX_NOTIFICATION_BYTES = 64 * 1024


def _oversized(request: Request, gateway: str, headers: dict[str, str], raw: bytes) -> str:
    reason = f"body: more than {MAX_NOTIFICATION_BYTES} bytes"
    log.warning("%s notification refused: %s", gateway, reason)
    with _pool(request).connection() as conn:
        orders.log_notification(conn, gateway, "", "refused", reason, headers, raw)
    return f"refused: {reason}"


async def _receive(request: Request, gateway: str) -> str | None:
    """The outcome of one notification; None when the database could not keep it (the
    gateway is then told to try again)."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_NOTIFICATION_BYTES:
            check = _oversized
            raw = raw[:MAX_NOTIFICATION_BYTES]
            break
    else:
        check = _notified
    try:
        outcome: str = await run_in_threadpool(check, request, gateway, headers, raw)
    except psycopg.Error as exc:
        log.warning("%s notification not stored: %s", gateway, exc)
        return None
    return outcome


@router.post("/notify/wechat")
async def notify_wechat(request: Request) -> Response:
    outcome = await _receive(request, "wechat")
    if outcome is None:
        return JSONResponse({"code": "FAIL", "message": "try again"}, 500)
    if outcome.startswith("refused"):
        return JSONResponse({"code": "FAIL", "message": outcome[9:][:200]}, 400)
    return Response(status_code=204)


@router.post("/notify/alipay")
async def notify_alipay(request: Request) -> Response:
    outcome = await _receive(request, "alipay")
    if outcome is None:
        return PlainTextResponse("fail", 500)
    return PlainTextResponse("fail" if outcome.startswith("refused") else "success")
