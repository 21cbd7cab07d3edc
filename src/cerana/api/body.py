"""Request bodies in every form TheHive accepts.

A body is JSON, a URL-encoded form, or multipart with a ``_json`` part
holding the fields plus file parts. Query-string parameters are merged into
the fields for every content type, as TheHive does (clients send ``range``
and ``sort`` in the URL).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.datastructures import UploadFile
from starlette.requests import Request

from cerana.domain.errors import InvalidInput
from cerana.services.attachments import Upload

# Query parameters TheHive reads from the URL of search and get calls; they
# may repeat (``sort=a&sort=b``).
_LIST_PARAMS = {"sort"}


@dataclass
class Fields:
    """The parsed request: fields by name and uploaded files by part name."""

    values: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Upload] = field(default_factory=dict)

    def pop(self, name: str, default: Any = None) -> Any:
        return self.values.pop(name, default)


async def read_fields(
    request: Request, max_size: int, *, with_query: bool = True
) -> Fields:
    """Parses the request body and query string into Fields.

    Raises InvalidInput (400) for malformed JSON, a non-object body, a body
    over ``max_size`` bytes or a field name starting with ``_`` in a form.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fields = Fields()
    if with_query:
        fields.values.update(_query_fields(request))
    if content_type == "multipart/form-data":
        await _read_multipart(request, fields)
    elif content_type == "application/x-www-form-urlencoded":
        form = await request.form()
        fields.values.update({k: v for k, v in form.items() if isinstance(v, str)})
    else:
        raw = await _read_limited(request, max_size)
        if raw.strip():
            fields.values.update(parse_json_object(raw, "request body"))
    return fields


def parse_json_object(raw: bytes | str, where: str) -> dict[str, Any]:
    """Returns the JSON object in ``raw``; raises InvalidInput naming ``where``."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{where} must be a JSON object, not {type(value).__name__}")
    return value


async def _read_limited(request: Request, max_size: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_size:
        raise InvalidInput(f"request body is larger than {max_size} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_size:
            raise InvalidInput(f"request body is larger than {max_size} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_multipart(request: Request, fields: Fields) -> None:
    try:
        form = await request.form(max_files=16, max_fields=64)
    except Exception as exc:  # starlette raises several types for bad multipart
        raise InvalidInput(f"multipart body is malformed: {exc}") from None
    # Uploaded files are read later, off the event loop; the request
    # middleware closes them once the response is sent.
    request.state.open_form = form
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            fields.files[name] = Upload(
                value.file,
                value.filename or name,
                value.content_type or "application/octet-stream",
            )
        elif name == "_json":
            fields.values.update(parse_json_object(value, "the _json part"))
        elif name.startswith("_"):
            raise InvalidInput(f"form field {name} is not allowed")
        else:
            fields.values[name] = value


def _query_fields(request: Request) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        if key in _LIST_PARAMS:
            values.setdefault(key, []).append(value)
        else:
            values[key] = value
    return values


def id_list(raw: Any, limit: int = 10_000) -> list[str]:
    """Returns the ``ids`` of a bulk call; raises InvalidInput if malformed."""
    if not isinstance(raw, list) or not raw or not all(isinstance(i, str) for i in raw):
        raise InvalidInput("ids must be a non-empty list of ids")
    if any("\x00" in i for i in raw):  # PostgreSQL refuses NUL in text
        raise InvalidInput("an id contains a NUL character")
    if len(raw) > limit:
        raise InvalidInput(f"at most {limit} ids can be updated at once")
    return raw


def expected_version(request: Request, body_version: Any) -> int | None:
    """Returns the version the client based its update on, if it sent one
    (``If-Match`` header or ``_version`` field)."""
    raw = request.headers.get("if-match", body_version)
    if raw is None:
        return None
    try:
        return int(str(raw).strip('W/"'))
    except ValueError:
        raise InvalidInput(f"version {raw!r} is not a number") from None
