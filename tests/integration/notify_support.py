"""Stand-in gateways for the notifier's integration tests, on loopback sockets.

One HTTP server plays the SMS and voice providers (Alibaba Cloud RPC: the signature is
recomputed here from the documentation, not with the notifier's code), the WeChat API
(token issue, expiry and revocation) and webhook receivers (HMAC checked from its
definition); aiosmtpd is the mail server, with STARTTLS on a certificate made at test time
and AUTH required after it. Each recipient can be scripted to fail a number of times.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import re
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from meterflow.settings import Settings
from tests.integration.conftest import PORT_BASE, env_of

HTTP_PORT = PORT_BASE + 700
SMTP_PORT = PORT_BASE + 701
HEALTH_PORT = PORT_BASE + 702
KEY_ID, KEY_SECRET = "LTAI-test-key", "test-access-secret"
APP_ID, APP_SECRET = "wx-test-app", "test-app-secret"
SMTP_USER, SMTP_PASSWORD = "alarms@meterflow.test", "test-smtp-password"
HOOK_SECRET = "test-hook-secret"
SECRETS = {"NOTIFY_TEST_SMS_SECRET": KEY_SECRET, "NOTIFY_TEST_VOICE_SECRET": KEY_SECRET,
           "NOTIFY_TEST_SMTP_PASSWORD": SMTP_PASSWORD, "NOTIFY_TEST_WECHAT_SECRET": APP_SECRET,
           "NOTIFY_TEST_HOOK_SECRET": HOOK_SECRET}


def spec_signature(secret: str, method: str, params: dict[str, str]) -> str:
    """Alibaba Cloud RPC signature 1.0, from the documentation."""
    def enc(text: str) -> str:
        return quote(text, safe="-_.~")
    query = "&".join(f"{enc(k)}={enc(params[k])}" for k in sorted(params) if k != "Signature")
    to_sign = f"{method}&{enc('/')}&{enc(query)}"
    mac = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


@dataclass
class Gateways:
    """What the stand-ins accepted, and how each recipient is scripted to fail."""

    sms: list[dict[str, str]] = field(default_factory=list)
    voice: list[dict[str, str]] = field(default_factory=list)
    wechat: list[dict[str, Any]] = field(default_factory=list)
    hooks: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    fail_next: dict[str, int] = field(default_factory=dict)   # recipient -> failures left
    always_fail: set[str] = field(default_factory=set)
    refusals: list[str] = field(default_factory=list)          # bad signatures and such
    nonces: set[str] = field(default_factory=set)
    tokens: dict[str, bool] = field(default_factory=dict)      # token -> still valid
    token_fetches: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def failing(self, recipient: str) -> bool:
        """Count a request for ``recipient``; True when it is scripted to fail now."""
        with self.lock:
            self.requests[recipient] += 1
            if recipient in self.always_fail:
                return True
            left = self.fail_next.get(recipient, 0)
            if left > 0:
                self.fail_next[recipient] = left - 1
                return True
            return False

    def revoke_tokens(self) -> None:
        with self.lock:
            self.tokens = dict.fromkeys(self.tokens, False)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _refuse(self, why: str, status: int = 400, code: str = "Refused") -> None:
        self.server.gateways.refusals.append(f"{self.path}: {why}")
        self._answer(status, {"Code": code, "Message": why, "errcode": 40000, "errmsg": why})

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/cgi-bin/token":
            self._refuse("no such path", 404)
            return
        query = dict(parse_qsl(url.query))
        if query != {"grant_type": "client_credential", "appid": APP_ID, "secret": APP_SECRET}:
            self._answer(200, {"errcode": 40125, "errmsg": "invalid appsecret"})
            return
        g = self.server.gateways
        with g.lock:
            g.token_fetches += 1
            token = f"TOKEN-{g.token_fetches}"
            g.tokens[token] = True
        self._answer(200, {"access_token": token, "expires_in": 7200})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        url = urlsplit(self.path)
        if url.path in ("/sms/", "/voice/"):
            self._rpc(url.path, body)
        elif url.path == "/cgi-bin/message/template/send":
            self._wechat(dict(parse_qsl(url.query)), body)
        elif url.path.startswith("/hook/"):
            self._hook(url.path.removeprefix("/hook/"), body)
        else:
            self._refuse("no such path", 404)

    def _rpc(self, path: str, body: bytes) -> None:
        g = self.server.gateways
        form = dict(parse_qsl(body.decode(), keep_blank_values=True))
        if self.headers.get("Content-Type", "").split(";")[0] != \
                "application/x-www-form-urlencoded":
            self._refuse("not a form")
            return
        if form.get("AccessKeyId") != KEY_ID:
            self._refuse("unknown AccessKeyId", 404, "InvalidAccessKeyId.NotFound")
            return
        if form.get("Signature") != spec_signature(KEY_SECRET, "POST", form):
            self._refuse("signature mismatch", 400, "SignatureDoesNotMatch")
            return
        if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", form.get("Timestamp", "")):
            self._refuse("bad Timestamp", 400, "InvalidTimeStamp.Format")
            return
        with g.lock:
            nonce = form.get("SignatureNonce", "")
            reused = nonce in g.nonces
            g.nonces.add(nonce)
        if reused or not nonce:
            self._refuse("nonce used", 400, "SignatureNonceUsed")
            return
        common = {"Format": "JSON", "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
                  "RegionId": "cn-hangzhou", "Version": "2017-05-25"}
        if any(form.get(k) != v for k, v in common.items()):
            self._refuse(f"common parameters wrong: {form}")
            return
        if path == "/sms/":
            needed, recipient = ("SendSms", "PhoneNumbers"), form.get("PhoneNumbers", "")
            keys = ("SignName", "TemplateCode", "TemplateParam", "OutId")
        else:
            needed, recipient = ("SingleCallByTts", "CalledNumber"), form.get("CalledNumber", "")
            keys = ("TtsCode", "TtsParam", "OutId")
        if form.get("Action") != needed[0] or not recipient or any(not form.get(k)
                                                                   for k in keys):
            self._refuse(f"missing parameters: {sorted(form)}", 400, "MissingParameter")
            return
        json.loads(form.get("TemplateParam") or form["TtsParam"])  # must be JSON
        if g.failing(recipient):
            self._answer(500, {"Code": "isp.SYSTEM_ERROR", "Message": "scripted failure"})
            return
        with g.lock:
            (g.sms if path == "/sms/" else g.voice).append(form)
        self._answer(200, {"Code": "OK", "Message": "OK", "RequestId": "r",
                           "BizId": f"biz-{len(g.sms)}", "CallId": f"call-{len(g.voice)}"})

    def _wechat(self, query: dict[str, str], body: bytes) -> None:
        g = self.server.gateways
        token = query.get("access_token", "")
        with g.lock:
            valid = g.tokens.get(token)
        if valid is None:
            self._answer(200, {"errcode": 40001, "errmsg": "invalid credential"})
            return
        if not valid:
            self._answer(200, {"errcode": 42001, "errmsg": "access_token expired"})
            return
        message = json.loads(body)
        if not message.get("touser") or not message.get("template_id") or \
                not isinstance(message.get("data"), dict):
            self._answer(200, {"errcode": 47001, "errmsg": "data format error"})
            return
        if g.failing(message["touser"]):
            self._answer(200, {"errcode": -1, "errmsg": "system error"})
            return
        with g.lock:
            g.wechat.append({**message, "token": token})
        self._answer(200, {"errcode": 0, "errmsg": "ok", "msgid": len(g.wechat)})

    def _hook(self, name: str, body: bytes) -> None:
        g = self.server.gateways
        stamp = self.headers.get("X-MeterFlow-Timestamp", "")
        expected = "v1=" + hmac.new(HOOK_SECRET.encode(), stamp.encode() + b"." + body,
                                    hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, self.headers.get("X-MeterFlow-Signature", "")):
            self._refuse("webhook signature mismatch", 401)
            return
        if g.failing(f"hook:{name}"):
            self._answer(503, {"error": "scripted failure"})
            return
        with g.lock:
            g.hooks.append((name, json.loads(body)))
        self._answer(200, {"ok": True})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    gateways: Gateways


def http_gateways() -> tuple[_Server, Gateways]:
    server = _Server(("127.0.0.1", HTTP_PORT), _Handler)
    server.gateways = Gateways()
    threading.Thread(target=server.serve_forever, daemon=True, name="gateways").start()
    return server, server.gateways


# -- SMTP -----------------------------------------------------------------------------------

def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, made now (it is also its own CA)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "meterflow test smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    subject: str
    text: str
    message_id: str
    tls: bool
    login: str


class MailBox:
    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self.logins: list[tuple[bytes, bool]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.original_content, policy=policy.default)
        body = parsed.get_body(("plain",))
        self.mails.append(Mail(
            envelope.mail_from, list(envelope.rcpt_tos), str(parsed["Subject"]),
            body.get_content() if body is not None else "", str(parsed["Message-ID"]),
            session.ssl is not None,
            session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword)
            else ""))
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == SMTP_USER.encode() \
            and auth_data.password == SMTP_PASSWORD.encode()
        return AuthResult(success=ok, handled=False, auth_data=auth_data)


def smtp_server(folder: Path) -> tuple[Controller, MailBox, Path]:
    import ssl

    cert, key = self_signed(folder)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    box = MailBox()
    controller = Controller(box, hostname="127.0.0.1", port=SMTP_PORT, tls_context=context,
                            require_starttls=True, auth_required=True,
                            authenticator=box.authenticate)
    controller.start()
    return controller, box, cert


# -- configuration and processes -------------------------------------------------------------

def config_yaml(ca_file: Path, **delivery: float) -> str:
    base = f"http://127.0.0.1:{HTTP_PORT}"
    settings = {"base_s": 0.2, "factor": 2, "cap_s": 1, "jitter": 0, "max_attempts": 4,
                "attempt_timeout_s": 5, "poll_s": 0.2, **delivery}
    return json.dumps({
        "notify": 1,
        "defaults": {"language": "zh", "timezone": "Asia/Shanghai"},
        "delivery": settings,
        "urgent": ["disconnect"],
        "channels": {
            "sms": {"provider": "aliyun", "endpoint": f"{base}/sms/", "access_key_id": KEY_ID,
                    "access_key_secret_env": "NOTIFY_TEST_SMS_SECRET", "sign_name": "测试物业",
                    "templates": {
                        "low_balance": {"code": "SMS_LOW", "params": ["account", "level",
                                                                      "balance"]},
                        "disconnect": {"code": "SMS_CUT", "params": ["account", "balance"]},
                        "offline": {"code": "SMS_OFF", "params": ["meter"]},
                        "refused": {"code": "SMS_REF", "params": ["account", "balance"]}}},
            "voice": {"endpoint": f"{base}/voice/", "access_key_id": KEY_ID,
                      "access_key_secret_env": "NOTIFY_TEST_VOICE_SECRET",
                      "called_show_number": "057100000000",
                      "templates": {"disconnect": {"code": "TTS_CUT",
                                                   "params": ["account", "balance"]}}},
            "email": {"host": "127.0.0.1", "port": SMTP_PORT, "security": "starttls",
                      "username": SMTP_USER, "password_env": "NOTIFY_TEST_SMTP_PASSWORD",
                      "from": f"MeterFlow <{SMTP_USER}>", "ca_file": str(ca_file)},
            "wechat": {"base_url": base, "app_id": APP_ID,
                       "app_secret_env": "NOTIFY_TEST_WECHAT_SECRET",
                       "templates": {"low_balance": {"template_id": "TPL-LOW", "data": {
                           "first": "{subject}", "keyword1": "{account}",
                           "keyword2": "{balance}", "remark": "{text}"}},
                           "disconnect": {"template_id": "TPL-CUT"}}},
            "webhook": {name: {"url": f"{base}/hook/{name}",
                               "secret_env": "NOTIFY_TEST_HOOK_SECRET"}
                        for name in ("ops", "broken")},
        },
    }, ensure_ascii=False)


def notifier_env(stack: Settings) -> dict[str, str]:
    return {**env_of(stack), **SECRETS, "METERFLOW_HEALTH_PORT": str(HEALTH_PORT)}


# -- data ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Place:
    tag: str
    site_id: str
    account_id: str
    meter_id: str
    customer_id: str


def make_place(db: Any, tag: str, *, phone: str = "", email: str = "", openid: str = "",
               language: str = "zh") -> Place:
    """A site, building, floor and room with one customer, account and meter."""
    place = Place(tag, f"S-{tag}", f"A-{tag}", f"M-{tag}", f"C-{tag}")
    db.execute("INSERT INTO sites (site_id, name) VALUES (%s, %s)",
               (place.site_id, f"Garden {tag}"))
    db.execute("INSERT INTO buildings (building_id, site_id, name) VALUES (%s, %s, 'B1')",
               (f"B-{tag}", place.site_id))
    db.execute("INSERT INTO floors (floor_id, building_id, level) VALUES (%s, %s, 1)",
               (f"F-{tag}", f"B-{tag}"))
    db.execute("INSERT INTO rooms (room_id, floor_id, name) VALUES (%s, %s, '101')",
               (f"R-{tag}", f"F-{tag}"))
    db.execute("INSERT INTO customers (customer_id, name, phone, email, wechat_openid, "
               "language) VALUES (%s, 'Li Lei', %s, %s, %s, %s)",
               (place.customer_id, phone, email, openid, language))
    db.execute("INSERT INTO accounts (account_id, name, customer_id, room_id) "
               "VALUES (%s, 'Room 101', %s, %s)", (place.account_id, place.customer_id,
                                                   f"R-{tag}"))
    db.execute("INSERT INTO meters (meter_id, commodity, protocol, account_id, room_id) "
               "VALUES (%s, 'electricity', 'mqtt', %s, %s)",
               (place.meter_id, place.account_id, f"R-{tag}"))
    return place


def wallet_alarms(account_id: str, charges_yuan: list[str], *, topup_fen: int = 6000,
                  start: dt.datetime | None = None) -> list[dict[str, Any]]:
    """The alarms the billing core raises for a top-up and then these charges, as the
    worker publishes them (thresholds and levels are the billing core's defaults)."""
    from decimal import Decimal

    from contracts import messages
    from contracts.ids import charge_id
    from pipeline import payloads
    from pipeline.billing.wallet import apply, open_account
    from pipeline.billing.wallet_model import Charge, LowBalanceAlarm, SupplyDecision, TopUp

    now = start or dt.datetime.now(dt.UTC)
    state, _ = apply(open_account(account_id), TopUp(f"topup-{account_id}", topup_fen), now)
    out: list[dict[str, Any]] = []
    meter = f"M-{account_id}"
    for i, yuan in enumerate(charges_yuan, 1):
        end = now + dt.timedelta(seconds=i)
        state, outputs = apply(state, Charge(charge_id(meter, end), meter, Decimal(yuan), end),
                               end)
        for o in outputs:
            if isinstance(o, LowBalanceAlarm):
                out.append(messages.as_dict(payloads.low_balance(o)))
            elif isinstance(o, SupplyDecision):
                out.append(messages.as_dict(payloads.supply(o)))
    return out
