"""How the web UI answers bad input: one ``{"detail": message}`` per error, with its status code."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from kronos.errors import KronosUserError
from kronos.inference.generation import GenerationCancelled
from kronos.jsonio import strict_json
from kronos.webui.store import UnknownItemError


MAX_DETAIL_CHARS = 2000  # a backstop: messages quote user values through kronos.data.errors.quoted already


class SafeJSONResponse(JSONResponse):
    """The app's JSON answers: a NaN or inf anywhere becomes null, never a 500 ("Out of range float values")."""

    def render(self, content: Any) -> bytes:
        return json.dumps(strict_json(content), ensure_ascii=False, allow_nan=False, indent=None,
                          separators=(",", ":")).encode("utf-8")


def _answer(status: int) -> Any:
    def handler(_: Request, err: Exception) -> JSONResponse:
        text = str(err.args[0]) if isinstance(err, LookupError) and err.args else str(err)
        text = " ".join(text.split())
        if len(text) > MAX_DETAIL_CHARS:
            text = text[: MAX_DETAIL_CHARS - 3] + "..."
        return SafeJSONResponse({"detail": text}, status_code=status)
    return handler


def _schema_error(_: Request, err: RequestValidationError) -> JSONResponse:
    parts = [f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'body'}: {e.get('msg')}" for e in err.errors()]
    text = "; ".join(parts[:5]) + (f"; and {len(parts) - 5} more" if len(parts) > 5 else "")
    return SafeJSONResponse({"detail": text[:MAX_DETAIL_CHARS] or "malformed request body"}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    """400 bad values (every :class:`KronosUserError`), 404 unknown ids/files, 503 cancelled forecasts, 422 malformed
    bodies. Starlette picks the handler of the most specific class, so ``UnknownItemError`` (a user error too) is 404."""
    app.add_exception_handler(KronosUserError, _answer(400))
    for missing in (UnknownItemError, FileNotFoundError):
        app.add_exception_handler(missing, _answer(404))
    app.add_exception_handler(GenerationCancelled, _answer(503))
    app.add_exception_handler(RequestValidationError, _schema_error)
