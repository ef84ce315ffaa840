"""Who a LibreChat Code API request acts for. LibreChat and its Code API servers have used, in turn: `X-API-Key`,
Basic auth from a base URL like `https://KEY@host/v1`, and a short-lived Bearer JWT that LibreChat mints (EdDSA or
RS256, `iss` "librechat", `aud` "codeapi"). Keys are Toolshed API keys; a JWT verified against
TOOLSHED_LIBRECHAT_JWT_PUBLIC_KEY acts for TOOLSHED_LIBRECHAT_PROJECT, as the LibreChat user its `sub` and
`tenant_id` name. With no key configured anywhere, access is open (the server then listens on loopback only)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from orchestrator.config import Settings
from orchestrator.services.keys import KeyRing
from orchestrator.services.projects import Caller

ISSUER, AUDIENCE = "librechat", "codeapi"
# LibreChat mints tokens for at most 300 s (codeapi.ts MAX_TTL_SECONDS); the leeway absorbs clock skew.
MAX_TTL_SECONDS, LEEWAY_SECONDS = 300, 60


@dataclass(frozen=True)
class LibreChatCaller:
    """A request's project, and for a JWT the LibreChat user it acts as (a digest of tenant and `sub`; "" for an
    API key, which speaks for its whole project). Users of one project never share sessions or session files."""

    caller: Caller
    user: str = ""

    def key(self, name: str) -> str:
        """A binding key for `name`, distinct per project and per user."""
        return self.caller.key(f"user/{self.user}/{name}" if self.user else name)


@lru_cache(maxsize=4)
def _public_key(configured: str) -> tuple[Any, str]:
    """The configured key and the one algorithm it verifies: the key's type decides, never the token's header
    (an RS256 token checked against an Ed25519 key made PyJWT raise TypeError, a 500)."""
    pem = configured if configured.lstrip().startswith("-----BEGIN") else Path(configured).read_text()
    key = load_pem_public_key(pem.encode())
    if isinstance(key, Ed25519PublicKey):
        return key, "EdDSA"
    if isinstance(key, RSAPublicKey):
        return key, "RS256"
    raise ValueError("TOOLSHED_LIBRECHAT_JWT_PUBLIC_KEY must be an Ed25519 or RSA public key")


def _user_of(claims: Mapping[str, Any]) -> str | None:
    """The user LibreChat names: `sub` (its user id) within `tenant_id`, both non-empty strings, in a token that
    lives no longer than LibreChat's tokens do."""
    sub, tenant = claims.get("sub"), claims.get("tenant_id")
    if not (isinstance(sub, str) and sub.strip() and isinstance(tenant, str) and tenant.strip()):
        return None
    issued = claims.get("iat", time.time())
    if not isinstance(issued, int | float) or claims["exp"] - issued > MAX_TTL_SECONDS + LEEWAY_SECONDS:
        return None
    return hashlib.sha256(json.dumps([tenant, sub]).encode()).hexdigest()[:32]


def _jwt_caller(token: str, settings: Settings) -> LibreChatCaller | None:
    if not settings.librechat_jwt_public_key:
        return None
    key, algorithm = _public_key(settings.librechat_jwt_public_key)
    try:
        claims = jwt.decode(token, key, algorithms=[algorithm], audience=AUDIENCE, issuer=ISSUER,
                            leeway=LEEWAY_SECONDS, options={"require": ["exp", "iss", "aud", "sub"]})
    except jwt.PyJWTError:
        return None
    user = _user_of(claims)
    return LibreChatCaller(Caller(project=settings.librechat_project), user) if user else None


def _key_caller(keys: KeyRing, key: str) -> LibreChatCaller | None:
    found = keys.caller(key, None)
    return LibreChatCaller(found) if found else None


def librechat_caller(keys: KeyRing, settings: Settings, headers: Mapping[str, str]) -> LibreChatCaller | None:
    if keys.open and not settings.librechat_jwt_public_key:
        return LibreChatCaller(Caller(admin=True))
    api_key = headers.get("x-api-key")
    if api_key:
        return _key_caller(keys, api_key)
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(credentials, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return _key_caller(keys, user or password)
    if scheme.lower() == "bearer":
        return _key_caller(keys, credentials) or _jwt_caller(credentials, settings)
    return None
