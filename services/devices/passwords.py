"""MQTT passwords as the brokers check them: PBKDF2-HMAC-SHA512 (RFC 8018).

One stored form serves both brokers MeterFlow documents: Mosquitto 2's password file
(``user:$7$<iterations>$<base64 salt>$<base64 hash>``, a 12-byte salt and a 64-byte hash,
as ``mosquitto_passwd`` writes them) and EMQX's PostgreSQL authenticator (algorithm
``pbkdf2``, ``mac_fun = sha512``, the hash as hex, the salt as text). The salt is 12
ASCII characters, so its text (EMQX) and its bytes (Mosquitto) are the same value.

Device secrets are 192 random bits: guessing them is hopeless whatever the iteration count,
so the count is Mosquitto's own default (101). It matters for the broker's CPU: Mosquitto
checks every connected client's password again on each reload of the file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

ITERATIONS = 101
SALT_CHARS = 12
HASH_BYTES = 64
MOSQUITTO = re.compile(r"\$7\$([0-9]+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)")


@dataclass(frozen=True, slots=True)
class PasswordHash:
    """A password's PBKDF2-HMAC-SHA512 hash, its salt (12 ASCII characters), iterations."""

    salt: str
    iterations: int
    hash_hex: str

    def mosquitto(self) -> str:
        """The ``$7$`` form of Mosquitto's password file."""
        salt = base64.b64encode(self.salt.encode("latin-1")).decode()
        digest = base64.b64encode(bytes.fromhex(self.hash_hex)).decode()
        return f"$7${self.iterations}${salt}${digest}"

    @classmethod
    def from_mosquitto(cls, text: str) -> PasswordHash:
        found = MOSQUITTO.fullmatch(text.strip())
        if found is None:
            raise ValueError("not a Mosquitto $7$ password hash")
        salt = base64.b64decode(found.group(2))
        digest = base64.b64decode(found.group(3))
        if len(salt) != SALT_CHARS or len(digest) != HASH_BYTES:
            raise ValueError("a Mosquitto $7$ hash has a 12-byte salt and a 64-byte hash")
        return cls(salt.decode("latin-1"), int(found.group(1)), digest.hex())

    def verify(self, password: str) -> bool:
        candidate = _derive(password, self.salt.encode("latin-1"), self.iterations)
        return hmac.compare_digest(candidate.hex(), self.hash_hex)


def _derive(password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations,
                               HASH_BYTES)


def hash_password(password: str, *, salt: str | None = None,
                  iterations: int = ITERATIONS) -> PasswordHash:
    """Hash a password with a fresh random salt (or the given one, for tests)."""
    if salt is None:
        salt = secrets.token_urlsafe(9)  # 12 characters of A-Z a-z 0-9 - _
    if len(salt) != SALT_CHARS or not salt.isascii():
        raise ValueError(f"a salt is {SALT_CHARS} ASCII characters")
    digest = _derive(password, salt.encode("ascii"), iterations)
    return PasswordHash(salt, iterations, digest.hex())


def new_secret() -> str:
    """A device password: 192 random bits as 32 URL-safe characters."""
    return secrets.token_urlsafe(24)
