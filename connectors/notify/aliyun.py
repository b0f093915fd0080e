"""Alibaba Cloud RPC API request signing, signature version 1.0 (pure).

As the "Signature mechanism" page of the Alibaba Cloud API documentation says:

1. the canonicalized query string is every parameter except ``Signature``, sorted by name,
   each name and value percent-encoded and joined as ``name=value`` with ``&``;
2. percent-encoding is UTF-8 then RFC 3986: ``A-Z a-z 0-9 - _ . ~`` stay, every other byte
   is ``%XX`` in upper-case hex (so a space is ``%20``, ``*`` is ``%2A``, ``~`` stays);
3. ``StringToSign = HTTPMethod + "&" + percentEncode("/") + "&" +
   percentEncode(CanonicalizedQueryString)``;
4. ``Signature = Base64(HMAC-SHA1(AccessKeySecret + "&", StringToSign))``.

Used by the SMS (``SendSms``) and voice (``SingleCallByTts``) adapters.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def percent_encode(text: str) -> str:
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in text.encode("utf-8"))


def canonical_query(params: Mapping[str, str]) -> str:
    return "&".join(f"{percent_encode(k)}={percent_encode(params[k])}" for k in sorted(params)
                    if k != "Signature")


def string_to_sign(method: str, params: Mapping[str, str]) -> str:
    return f"{method}&{percent_encode('/')}&{percent_encode(canonical_query(params))}"


def signature(secret: str, method: str, params: Mapping[str, str]) -> str:
    digest = hmac.new(f"{secret}&".encode(), string_to_sign(method, params).encode(),
                      hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def timestamp(now: datetime) -> str:
    """ISO 8601 in UTC to the second, e.g. ``2017-07-12T02:42:19Z``."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def signed(params: Mapping[str, str], *, action: str, version: str, access_key_id: str,
           secret: str, region_id: str, now: datetime, nonce: str, method: str = "POST"
           ) -> dict[str, str]:
    """``params`` with the common parameters and the ``Signature`` added."""
    full = {
        **params,
        "AccessKeyId": access_key_id, "Action": action, "Format": "JSON",
        "RegionId": region_id, "SignatureMethod": "HMAC-SHA1", "SignatureNonce": nonce,
        "SignatureVersion": "1.0", "Timestamp": timestamp(now), "Version": version,
    }
    full["Signature"] = signature(secret, method, full)
    return full
