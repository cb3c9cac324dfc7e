"""Bearer tokens of the network API: made here, stored as SHA-256 digests only, checked in constant time.

A token reads `ll_<id>_<secret>`: the id is public (listings, logs, revoking), the secret is 256 random
bits shown once when the token is made. The store keeps the SHA-256 of the whole token; a token of
that strength needs no slow hash. While the daemon runs only the daemon writes this table (the CLI asks
it over the unix socket); without a daemon the CLI writes it itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from gateway.errors import StoreError
from gateway.store import Store
from gateway.web.routes import Body, Route, Scope, add_routes

PREFIX = "ll"
SECRET_BYTES = 32  # 256 bits
TOUCH_EVERY_S = 60.0  # last use is written at most this often per token (a scraper calls every few seconds)
NAME = re.compile(r"[^\x00-\x1f\x7f]{1,64}")
COLUMNS = "id, name, scope, created_at, revoked_at, last_used_at, last_used_from"
# Compared against when the id is unknown, so an unknown id costs the same as a wrong secret.
_NO_DIGEST = hashlib.sha256(b"no such token").hexdigest()


def digest(token: str) -> str:
    """The SHA-256 (hex) of a token, as stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_id(token: str) -> str | None:
    """The public id inside a token, or None when it is not shaped like one of ours."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not re.fullmatch(r"t[0-9a-f]{10}", parts[1]) or not parts[2]:
        return None
    return parts[1]


@dataclass(frozen=True)
class Token:
    """A token as listed: never its secret, never its digest."""

    id: str
    name: str
    scope: Scope
    created_at: float
    revoked_at: float | None = None
    last_used_at: float | None = None
    last_used_from: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The token as the API answers it."""
        return {**asdict(self), "scope": self.scope.value}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Token:
        """A row of api_tokens (without its digest)."""
        return cls(**{**row, "scope": Scope(row["scope"])})


class TokenStore:
    """The api_tokens table of the store (its schema: gateway/web/token_schema.py, in the store's history)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._touched: dict[str, tuple[float, str]] = {}

    def create(self, name: str, scope: Scope, by: str) -> tuple[Token, str]:
        """Make a token; returns it and its secret (shown once, stored only as a digest)."""
        if not NAME.fullmatch(name):
            raise ValueError("name: expected 1 to 64 characters, no control characters")
        token = Token(id=f"t{secrets.token_hex(5)}", name=name, scope=scope, created_at=time.time())
        secret = f"{PREFIX}_{token.id}_{secrets.token_urlsafe(SECRET_BYTES)}"
        with self.store.write() as conn:
            conn.execute(
                "INSERT INTO api_tokens (id, name, scope, digest, created_at) VALUES (?, ?, ?, ?, ?)",
                [token.id, name, scope.value, digest(secret), token.created_at],
            )
        self.store.add_event("api", f"API token {token.id} ({name!r}, {scope.value}) created by {by}", token.as_dict())
        return token, secret

    def tokens(self) -> list[Token]:
        """Every token, revoked ones included, oldest first."""
        with self.store.read() as conn:
            cursor = conn.execute(f"SELECT {COLUMNS} FROM api_tokens ORDER BY created_at, id")
            names = [d[0] for d in cursor.description]
            return [Token.from_row(dict(zip(names, row, strict=True))) for row in cursor.fetchall()]

    def get(self, id_: str) -> Token | None:
        """One token by its id."""
        with self.store.read() as conn:
            cursor = conn.execute(f"SELECT {COLUMNS} FROM api_tokens WHERE id = ?", [id_])
            names = [d[0] for d in cursor.description]
            row = cursor.fetchone()
        return Token.from_row(dict(zip(names, row, strict=True))) if row else None

    def revoke(self, id_: str, by: str) -> Token | None:
        """Revoke a token (at once, for good); None if there is no such token. Revoking twice changes nothing."""
        with self.store.write() as conn:
            conn.execute("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", [time.time(), id_])
        token = self.get(id_)
        if token is not None:
            self.store.add_event("api", f"API token {token.id} ({token.name!r}) revoked by {by}", token.as_dict())
        return token

    def verify(self, presented: str) -> Token | None:
        """The token whose digest matches (revoked ones too: the caller tells them apart), else None."""
        id_ = token_id(presented)
        stored = _NO_DIGEST
        if id_ is not None:
            with self.store.read() as conn:
                row = conn.execute("SELECT digest FROM api_tokens WHERE id = ?", [id_]).fetchone()
            if row is not None:
                stored = str(row[0])
        if not hmac.compare_digest(stored, digest(presented)) or id_ is None:
            return None
        return self.get(id_)

    def touch(self, token: Token, address: str) -> None:
        """Note the token's last use (written at most every TOUCH_EVERY_S, or when the address changes)."""
        now = time.time()
        last = self._touched.get(token.id)
        if last is not None and last[1] == address and now - last[0] < TOUCH_EVERY_S:
            return
        self._touched[token.id] = (now, address)
        with self.store.write() as conn:
            conn.execute(
                "UPDATE api_tokens SET last_used_at = ?, last_used_from = ? WHERE id = ?", [now, address, token.id]
            )


TOKEN_ROUTES = (
    Route(
        "GET",
        "/api/v1/tokens",
        "listTokens",
        Scope.ADMIN,
        "The API's bearer tokens (never their secrets)",
        "`tokens`: id, name, scope, created, revoked, last use and from where",
    ),
    Route(
        "POST",
        "/api/v1/tokens",
        "createToken",
        Scope.ADMIN,
        "Make a bearer token",
        "The token's `secret` (shown this once: only its SHA-256 is stored) and its listing",
        status=201,
        body=Body(
            "What the token is for, and what it may do",
            {
                "type": "object",
                "required": ["name", "scope"],
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 64},
                    "scope": {"type": "string", "enum": [s.value for s in Scope]},
                },
            },
        ),
        errors={400: "name or scope missing or not allowed"},
    ),
    Route(
        "DELETE",
        "/api/v1/tokens/{id}",
        "revokeToken",
        Scope.ADMIN,
        "Revoke a bearer token (at once, for good)",
        "The revoked token's listing",
        errors={404: "No token has this id"},
    ),
)


def _by(request: web.Request) -> str:
    token = request.get("token")
    return f"token {token.id} from {request.remote}" if isinstance(token, Token) else "the unix socket"


def add_token_routes(app: web.Application, tokens: TokenStore) -> None:
    """GET/POST /api/v1/tokens, DELETE /api/v1/tokens/{id}: token management (admin scope over the network)."""

    async def list_tokens(_request: web.Request) -> web.Response:
        found = await asyncio.to_thread(tokens.tokens)
        return web.json_response({"tokens": [t.as_dict() for t in found]})

    async def create_token(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return web.json_response({"error": "expected a JSON object with name and scope"}, status=400)
        try:
            scope = Scope(str(body.get("scope")))
        except ValueError:
            allowed = ", ".join(s.value for s in Scope)
            return web.json_response({"error": f"scope: expected one of {allowed}"}, status=400)
        try:
            token, secret = await asyncio.to_thread(tokens.create, str(body.get("name") or ""), scope, _by(request))
        except ValueError as err:
            return web.json_response({"error": str(err)}, status=400)
        except StoreError as err:
            return web.json_response({"error": str(err)}, status=500)
        return web.json_response({"secret": secret, "token": token.as_dict()}, status=201)

    async def revoke_token(request: web.Request) -> web.Response:
        token = await asyncio.to_thread(tokens.revoke, request.match_info["id"], _by(request))
        if token is None:
            return web.json_response({"error": f"no token {request.match_info['id']!r}"}, status=404)
        return web.json_response({"token": token.as_dict()})

    add_routes(app, TOKEN_ROUTES, {"listTokens": list_tokens, "createToken": create_token, "revokeToken": revoke_token})
