"""E-mail over SMTP submission: STARTTLS (RFC 3207) then AUTH (RFC 4954), or implicit TLS.

The certificate is verified (the system's CAs, or ``ca_file``), and with ``starttls`` a
server that does not offer STARTTLS is refused rather than written to in clear text. The
``Message-ID`` is derived from the notification id, so a repeat after a lost answer is
recognisable by the receiving side. SMTP reply codes decide: 4xx and a dropped connection
are tried again, 5xx and a refused login fail for good.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any

from connectors.notify.channels import Message, Result, short
from connectors.notify.policy import Outcome
from contracts.clock import Clock, utc_now


class SmtpEmail:
    name = "email"

    def __init__(self, host: str, port: int, security: str, sender: str, username: str = "",
                 password: str = "", ca_file: Path | None = None,
                 clock: Clock = utc_now) -> None:
        self.host = host
        self.port = port
        self.security = security
        self.sender = sender
        self.username = username
        self._password = password
        self.ca_file = ca_file
        self._clock = clock

    def __repr__(self) -> str:
        return f"SmtpEmail(host={self.host!r}, port={self.port}, security={self.security!r})"

    def compose(self, message: Message, recipient: str) -> dict[str, Any]:
        return {"subject": message.subject, "text": message.text}

    def _message(self, recipient: str, payload: dict[str, Any], notification_id: str
                 ) -> EmailMessage:
        domain = parseaddr(self.sender)[1].rpartition("@")[2] or "meterflow.invalid"
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = recipient
        mail["Subject"] = str(payload["subject"])
        mail["Date"] = format_datetime(self._clock())
        mail["Message-ID"] = f"<{notification_id}@{domain}>"
        mail.set_content(str(payload["text"]))
        return mail

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)

    def send(self, recipient: str, payload: dict[str, Any], notification_id: str,
             timeout: float) -> Result:
        mail = self._message(recipient, payload, notification_id)
        try:
            smtp: smtplib.SMTP
            if self.security == "tls":
                smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=timeout,
                                        context=self._context())
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=timeout)
            with smtp:
                smtp.ehlo()
                if self.security == "starttls":
                    if not smtp.has_extn("starttls"):
                        return Result(Outcome.FAILED, "the server offers no STARTTLS; "
                                                      "not sending in clear text")
                    smtp.starttls(context=self._context())
                    smtp.ehlo()
                if self.username:
                    smtp.login(self.username, self._password)
                refused = smtp.send_message(mail)
        except smtplib.SMTPAuthenticationError as exc:
            return Result(Outcome.FAILED, f"login refused: {exc.smtp_code}")
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            outcome = Outcome.RETRY if all(400 <= c < 500 for c in codes) else Outcome.FAILED
            return Result(outcome, f"recipient refused: {codes}")
        except smtplib.SMTPResponseException as exc:
            outcome = Outcome.RETRY if 400 <= exc.smtp_code < 500 else Outcome.FAILED
            text = exc.smtp_error.decode(errors="replace") if isinstance(
                exc.smtp_error, bytes) else str(exc.smtp_error)
            return Result(outcome, f"SMTP {exc.smtp_code}: {short(text, 200)}")
        except ssl.SSLCertVerificationError as exc:
            return Result(Outcome.FAILED, f"TLS certificate not trusted: {exc.verify_message}")
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            return Result(Outcome.RETRY, f"{type(exc).__name__}: {short(str(exc), 200)}")
        if refused:
            return Result(Outcome.FAILED, f"recipient refused: {sorted(refused)}")
        return Result(Outcome.DELIVERED, f"accepted by {self.host}")
