"""Reading HTML form fields into the TheHive-shaped bodies services take.

Bad input raises InvalidInput naming the field as the form labels it, so
the page can show the message next to the form.
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.datastructures import FormData, UploadFile

from cerana.domain.errors import InvalidInput
from cerana.services.attachments import Upload


def text(form: FormData, name: str) -> str:
    """Returns a text field, stripped ("" when absent)."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def checked(form: FormData, name: str) -> bool:
    """True when a checkbox was ticked."""
    return text(form, name) in ("on", "true", "1")


def tag_list(form: FormData, name: str) -> list[str]:
    """Returns the comma-separated tags of a field, without empty ones."""
    return list(
        dict.fromkeys(t.strip() for t in text(form, name).split(",") if t.strip())
    )


def number(form: FormData, name: str, label: str, choices: tuple[int, ...]) -> int:
    """Returns a whole number field that must be one of ``choices``."""
    raw = text(form, name)
    if not raw.isdigit() or int(raw) not in choices:
        raise InvalidInput(f"{label}: choose one of the offered values")
    return int(raw)


def choice(form: FormData, name: str, label: str, choices: tuple[str, ...]) -> str:
    """Returns a select field's value, which must be one of ``choices``."""
    value = text(form, name)
    if value not in choices:
        raise InvalidInput(f"{label}: choose one of the offered values")
    return value


def date_time(form: FormData, name: str, label: str) -> int | None:
    """Returns a ``datetime-local`` field, read as UTC, in epoch ms."""
    raw = text(form, name)
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(
            f"{label}: '{raw[:40]}' is not a date and time such as 2024-05-31T14:30"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def upload(form: FormData, name: str) -> Upload | None:
    """Returns the file of a file field, None when no file was chosen."""
    value = form.get(name)
    if not isinstance(value, UploadFile) or not value.filename:
        return None
    return Upload(
        value.file, value.filename, value.content_type or "application/octet-stream"
    )


def lines(form: FormData, name: str) -> list[str]:
    """Returns the non-empty lines of a textarea."""
    return [line.strip() for line in text(form, name).splitlines() if line.strip()]


def ids(form: FormData, name: str) -> list[str]:
    """Returns the ticked ids of a table's checkboxes."""
    return [v for v in form.getlist(name) if isinstance(v, str) and v]
