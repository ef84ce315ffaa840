"""Every object id Toolshed mints, in one place: a prefix naming the kind (OpenAI's where it has one) and random
bits enough that ids never collide or can be guessed."""

from __future__ import annotations

import secrets


def new_id(prefix: str, nbytes: int = 16) -> str:
    """`prefix` + random hex: cntr_, cfile_, exec_, vs_, vsfb_ ..."""
    return f"{prefix}{secrets.token_hex(nbytes)}"


def new_file_id() -> str:
    """`file-` + 24 letters and digits, the shape of OpenAI's file ids."""
    return "file-" + secrets.token_urlsafe(18).replace("-", "A").replace("_", "B")
