"""Who a LibreChat Code API request acts for. LibreChat and its Code API servers have used, in turn: `X-API-Key`,
Basic auth from a base URL like `https://KEY@host/v1`, and a short-lived Bearer JWT that LibreChat mints (EdDSA or
RS256, `iss` "librechat", `aud` "codeapi"). Keys are Toolshed API keys; a JWT verified against
TOOLSHED_LIBRECHAT_JWT_PUBLIC_KEY acts for TOOLSHED_LIBRECHAT_PROJECT. With no key configured anywhere, access is
open (the server then listens on loopback only)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from orchestrator.config import Settings
from orchestrator.services.keys import KeyRing
from orchestrator.services.projects import Caller

ISSUER, AUDIENCE = "librechat", "codeapi"


@lru_cache(maxsize=4)
def _public_key(configured: str) -> object:
    pem = configured if configured.lstrip().startswith("-----BEGIN") else Path(configured).read_text()
    return load_pem_public_key(pem.encode())


def _jwt_caller(token: str, settings: Settings) -> Caller | None:
    if not settings.librechat_jwt_public_key:
        return None
    try:
        jwt.decode(token, _public_key(settings.librechat_jwt_public_key),  # type: ignore[arg-type]
                   algorithms=["EdDSA", "RS256"], audience=AUDIENCE, issuer=ISSUER,
                   options={"require": ["exp", "iss", "aud", "sub"]})
    except jwt.PyJWTError:
        return None
    return Caller(project=settings.librechat_project)


def librechat_caller(keys: KeyRing, settings: Settings, headers: Mapping[str, str]) -> Caller | None:
    if keys.open and not settings.librechat_jwt_public_key:
        return Caller(admin=True)
    api_key = headers.get("x-api-key")
    if api_key:
        return keys.caller(api_key, None)
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(credentials, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return keys.caller(user or password, None)
    if scheme.lower() == "bearer":
        return keys.caller(credentials, None) or _jwt_caller(credentials, settings)
    return None
