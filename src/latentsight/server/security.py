"""Who may ask: every request carries the token when one is set; without one, only loopback
addresses may be served, and only requests naming a loopback host (no DNS rebinding)."""

from __future__ import annotations

import hmac
import ipaddress

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from latentsight.errors import LatentsightError

TOKEN_HEADER = "x-latentsight-token"
TOKEN_QUERY = "token"
TOKEN_COOKIE = "latentsight_token"
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without an access token."""
    if not is_loopback(host) and not token:
        raise LatentsightError(
            f"Serving on {host} would expose the run to other machines: pass an access token "
            "(--token SECRET, sent by every request as ?token=SECRET or the X-Latentsight-Token "
            "header), or bind to 127.0.0.1."
        )


def _presented(request: Request) -> str | None:
    header = request.headers.get(TOKEN_HEADER)
    if header:
        return header
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:]
    return request.query_params.get(TOKEN_QUERY) or request.cookies.get(TOKEN_COOKIE)


PAGES = ("/", "/docs")  # opened with ?token=...: they set the cookie their requests then carry


class AccessGuard:
    """ASGI middleware: the token check (when a token is set) or the loopback Host check."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self._refusal(request)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        if self.token and request.query_params.get(TOKEN_QUERY) and scope["path"] in PAGES:

            async def send_with_cookie(message: dict) -> None:
                if message["type"] == "http.response.start":
                    cookie = (
                        f"{TOKEN_COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"
                    ).encode("latin-1")
                    message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie)]
                await send(message)

            await self.app(scope, receive, send_with_cookie)
            return
        await self.app(scope, receive, send)

    def _refusal(self, request: Request) -> Response | None:
        if self.token:
            presented = _presented(request) or ""
            if not hmac.compare_digest(presented.encode(), self.token.encode()):
                return JSONResponse(
                    {
                        "detail": "This server needs its access token: add ?token=... to the "
                        "address or send the X-Latentsight-Token header."
                    },
                    status_code=401,
                )
            return None
        host = request.headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
        if name not in LOOPBACK_NAMES:
            return JSONResponse(
                {"detail": f"Host {host!r} refused: this server answers on localhost only."},
                status_code=400,
            )
        return None
