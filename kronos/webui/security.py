"""Local-only guards as one ASGI middleware: Host check, same-origin writes, CSP and frame denial.

The UI has no authentication by design: it is meant for the machine it runs on. These guards keep a
web page the user happens to visit from driving it through the browser:
- DNS rebinding: a request whose ``Host`` header is not an address the server answers to gets 421.
- Cross-site writes: a state-changing request (POST, PUT, PATCH, DELETE) whose ``Origin`` (or
  ``Sec-Fetch-Site``) says it comes from another site gets 403. Scripts without an Origin header
  (curl, Python) are allowed: they do not run in a victim's browser.
- Every answer carries a Content-Security-Policy (own scripts only, ``frame-ancestors 'none'``),
  ``X-Frame-Options: DENY``, ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``.
Pure ASGI (not BaseHTTPMiddleware), so streaming and ``request.is_disconnected()`` work unchanged.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from kronos.data.errors import quoted

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Plotly styles its SVG with inline style attributes, hence 'unsafe-inline' for styles only.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable, Callable], Awaitable[None]]


def host_name(value: str) -> str:
    """The host part of a ``Host`` header or URL netloc, lower-case, without port or IPv6 brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class LocalOnlyMiddleware:
    """Wraps the app; ``allowed_hosts`` are host names (no ports) the server is reached by.

    ``max_body_bytes``: a request announcing a larger body (Content-Length) is refused with 413 before
    it is read; a body without Content-Length (chunked) is counted as it arrives and refused with 413 as
    soon as it passes the cap; the app never receives the rest (the server discards it). So no upload or
    JSON body can exhaust memory or disk (None: no cap).
    """

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str] = LOOPBACK_NAMES,
                 max_body_bytes: int | None = None) -> None:
        self.app = app
        self.allowed = frozenset(host_name(h) for h in allowed_hosts)
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        if host_name(host) not in self.allowed:
            await _refuse(send, 421, f"this server answers to {', '.join(sorted(self.allowed))} only, not to host "
                                     f"{quoted(host)}: open it by that address (the UI is local-only)")
            return
        if scope["method"].upper() not in SAFE_METHODS:
            origin = headers.get("origin")
            site = headers.get("sec-fetch-site", "")
            same = origin is None or (origin != "null" and urlsplit(origin).netloc.lower() == host.lower())
            if not same or site in ("cross-site", "same-site"):
                await _refuse(send, 403, f"cross-origin request from {quoted(origin or site)} refused: the UI only "
                                         f"accepts changes from its own page")
                return
            length = headers.get("content-length", "")
            if self.max_body_bytes is not None and length.isdigit() and int(length) > self.max_body_bytes:
                await _refuse(send, 413, self._too_large(f"request body of {int(length):,} bytes"))
                return

        response_started = False
        refused = False
        received = 0

        async def send_with_headers(message: dict[str, Any]) -> None:
            nonlocal response_started
            if refused:  # the 413 went out already; whatever the app answers to the cut-off body is dropped
                return
            if message["type"] == "http.response.start":
                response_started = True
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        async def receive_capped() -> dict[str, Any]:
            # Counts the body as it arrives, so a body without Content-Length (chunked) is capped as well,
            # before the app has buffered (or spooled to disk) more than the cap.
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request" and self.max_body_bytes is not None:
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    if not response_started:
                        await _refuse(send, 413, self._too_large("request body"))
                    refused = True
                    raise BodyTooLarge(received)
            return message

        try:
            await self.app(scope, receive_capped, send_with_headers)
        except BodyTooLarge:
            pass  # answered in receive_capped; the unread rest of the body is left to the server to discard

    def _too_large(self, what: str) -> str:
        return (f"{what} is larger than the {self.max_body_bytes / 2**20:.3g} MB limit: send less data "
                f"(for a CSV, trim the history or place the file in the data directory)")


class BodyTooLarge(Exception):
    """Raised from ``receive`` once a request body passes the cap (the 413 has already been sent)."""


async def _refuse(send: Callable, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})
