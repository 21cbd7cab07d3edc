"""Alerts as TheHive 3 receives them: checking a body and its artifacts.

An alert body is checked whole before anything is written: the alert's own
attributes by the `ALERT` spec, then each artifact (datatype from the
organisation's list, value normalised for its datatype, file artifacts sent
as ``name;mime;base64`` decoded). Every problem is reported at once, each
named by where it is (``artifacts[3].data``), so a client fixes its feed in
one round trip. No I/O happens here: the caller passes the datatype list.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from cerana.domain import attributes as attrs
from cerana.domain.datatypes import InvalidObservableValue, normalise_observable
from cerana.domain.dates import now_ms, parse_date
from cerana.domain.errors import (
    AttributeCheckingError,
    AttributeProblem,
    InvalidInput,
    clip_value,
)

TABLE = "alert"
MAX_ARTIFACTS = 1000
# Widths of the columns these attributes are stored in; PostgreSQL refuses
# longer values, so they are refused here with a message instead.
COLUMN_WIDTHS = {"type": 128, "source": 256, "sourceRef": 512, "caseTemplate": 256}
# Attributes TheHive accepts on creation and then discards.
DISCARDED_ON_CREATE = ("lastSyncDate", "case", "status", "follow")
ARTIFACT_KEYS = frozenset(
    {"data", "dataType", "message", "startDate", "tlp", "tags", "ioc", "sighted"}
    | {"attachment"}
)
ALERT_STATUSES = attrs.ALERT_STATUSES
# How an artifact's own attributes are checked. TheHive asks for a message
# or tags; thehive4py's bare artifacts have neither, and the tag added on
# import satisfies the observable's rule.
_ARTIFACT_ATTRIBUTES = tuple(
    (name, attrs.OBSERVABLE.attributes[name])
    for name in ("message", "tags", "tlp", "ioc")
)
_SHA256_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class UnreadableItem:
    """An item of a feed that could not even be parsed (an NDJSON line that
    is not JSON); checking it reports ``reason`` as that item's error."""

    reason: str


@dataclass(frozen=True)
class FileContent:
    """A file sent inside an artifact as ``name;mime;base64``, decoded."""

    name: str
    content_type: str
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass(slots=True)
class ArtifactDraft:
    """One checked artifact, ready to store.

    A file artifact has ``file`` (new content) or ``attachment_id`` (content
    the server stores already, as a client sends back what it read) and no
    ``data``.
    """

    data_type: str
    data: str | None
    message: str | None
    tags: list[str]
    tlp: int
    ioc: bool
    start_date: int
    file: FileContent | None = None
    attachment_id: str | None = None
    attachment_name: str | None = None
    attachment_content_type: str | None = None


@dataclass
class AlertDraft:
    """A checked alert body: column values and its artifacts."""

    values: dict[str, Any]
    artifacts: list[ArtifactDraft] = field(default_factory=list)

    @functools.cached_property
    def id(self) -> str:
        return alert_id(
            self.values["type"], self.values["source"], self.values["source_ref"]
        )


def alert_id(alert_type: str, source: str, source_ref: str) -> str:
    """Returns TheHive's alert id: MD5 of ``type|source|sourceRef``.

    Scripts written for TheHive compute it to reach an alert directly.
    """
    # Limitation: the id ignores the organisation, because TheHive's rule
    # has none; two organisations cannot hold the same (type, source,
    # sourceRef) until organisations are hosted side by side (#4).
    text = f"{alert_type}|{source}|{source_ref}"
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def check_alert(
    body: Any, datatypes: Collection[str], *, max_file_size: int
) -> AlertDraft:
    """Checks an alert creation body; returns the draft to store.

    Accepts TheHive's wire names; ``lastSyncDate``, ``case``, ``status`` and
    ``follow`` are discarded as TheHive does, and thehive4py's empty
    ``customFields`` is ignored. Raises AttributeCheckingError naming every
    bad attribute and artifact (``artifacts[2].dataType``).
    """
    if isinstance(body, UnreadableItem):
        raise InvalidInput(body.reason)
    if not isinstance(body, Mapping):
        raise _error([_problem("alert", "an alert must be a JSON object", body)])
    fields = {k: v for k, v in body.items() if k not in DISCARDED_ON_CREATE}
    raw_artifacts = fields.pop("artifacts", None)
    problems = _drop_empty_custom_fields(fields)
    values: dict[str, Any] = {}
    try:
        values = attrs.check_create(attrs.ALERT, fields)
    except AttributeCheckingError as exc:
        problems += exc.problems
    problems += _check_widths(fields)
    draft = AlertDraft(values)
    if not problems:
        problems += _check_keys(values)
    draft.artifacts = _collect_artifacts(
        raw_artifacts, datatypes, values.get("tlp", 2), max_file_size, problems
    )
    if problems:
        raise _error(problems)
    return draft


def check_alert_update(
    body: Mapping[str, Any], datatypes: Collection[str], *, max_file_size: int
) -> tuple[dict[str, Any], list[ArtifactDraft] | None]:
    """Checks a PATCH body; returns (column changes, artifacts or None).

    Besides the spec's writable attributes, ``status`` (one of TheHive's
    four) and ``follow`` may be set, as TheHive's UI does in bulk. Raises
    AttributeCheckingError naming every problem.
    """
    fields = dict(body)
    raw_artifacts = fields.pop("artifacts", None)
    special: dict[str, Any] = {
        k: fields.pop(k) for k in ("status", "follow") if k in fields
    }
    problems = _drop_empty_custom_fields(fields)
    changes: dict[str, Any] = {}
    try:
        changes = attrs.check_update(attrs.ALERT, fields)
    except AttributeCheckingError as exc:
        problems += exc.problems
    problems += _check_widths(fields)
    changes.update(_check_status_and_follow(special, problems))
    artifacts = None
    if raw_artifacts is not None:
        default_tlp = int(changes.get("tlp") or 2)
        artifacts = _collect_artifacts(
            raw_artifacts, datatypes, default_tlp, max_file_size, problems
        )
    if problems:
        raise _error(problems)
    return changes, artifacts


def _check_status_and_follow(
    special: Mapping[str, Any], problems: list[AttributeProblem]
) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if "status" in special:
        status = special["status"]
        if status not in ALERT_STATUSES:
            problems.append(
                _problem(
                    "status",
                    f"status must be one of {', '.join(ALERT_STATUSES)}",
                    status,
                )
            )
        else:
            changes["status"] = status
    if "follow" in special:
        follow = special["follow"]
        if not isinstance(follow, bool):
            problems.append(_problem("follow", "follow must be true or false", follow))
        else:
            changes["follow"] = follow
    return changes


def _drop_empty_custom_fields(fields: dict[str, Any]) -> list[AttributeProblem]:
    # Limitation: alerts carry no custom fields, because TheHive 3.0 had
    # none; thehive4py sends an empty object with every alert, which is
    # ignored, and any content is refused rather than silently lost (#4).
    custom = fields.pop("customFields", None)
    if custom in (None, {}):
        return []
    return [_problem("customFields", "alerts have no custom fields", custom)]


def _check_widths(fields: Mapping[str, Any]) -> list[AttributeProblem]:
    problems = []
    for name, width in COLUMN_WIDTHS.items():
        value = fields.get(name)
        if isinstance(value, str) and len(value) > width:
            problems.append(
                _problem(name, f"{name} is longer than {width} characters", value)
            )
    return problems


def _check_keys(values: Mapping[str, Any]) -> list[AttributeProblem]:
    problems = []
    for column, name in (("type", "type"), ("source", "source")):
        if not values[column].strip():
            problems.append(_problem(name, f"{name} is empty", values[column]))
    if not values["source_ref"].strip():
        problems.append(_problem("sourceRef", "sourceRef is empty", ""))
    return problems


def _collect_artifacts(
    raw: Any,
    datatypes: Collection[str],
    default_tlp: int,
    max_file_size: int,
    problems: list[AttributeProblem],
) -> list[ArtifactDraft]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.append(_problem("artifacts", "artifacts must be a list", raw))
        return []
    if len(raw) > MAX_ARTIFACTS:
        problems.append(
            _problem("artifacts", f"an alert has at most {MAX_ARTIFACTS} artifacts", "")
        )
        return []
    drafts = []
    now = now_ms()
    for index, item in enumerate(raw):
        try:
            drafts.append(
                check_artifact(
                    item, index, datatypes, default_tlp, max_file_size, now=now
                )
            )
        except AttributeCheckingError as exc:
            problems += exc.problems
    return merge_duplicates(drafts)


def check_artifact(
    raw: Any,
    index: int,
    datatypes: Collection[str],
    default_tlp: int,
    max_file_size: int,
    *,
    now: int | None = None,
) -> ArtifactDraft:
    """Checks artifact number ``index`` of an alert; returns its draft.

    ``now`` is the default start date (the current time when not given).
    Raises AttributeCheckingError whose problems are named
    ``artifacts[<index>].<attribute>``.
    """
    where = f"artifacts[{index}]"
    if not isinstance(raw, Mapping):
        raise _error([_problem(where, f"{where} must be an object", raw)])
    problems = []
    if not ARTIFACT_KEYS.issuperset(raw):
        problems = [
            _problem(f"{where}.{key}", f"{where}: unknown attribute {key}", raw[key])
            for key in raw
            if key not in ARTIFACT_KEYS
        ]
    data_type = raw.get("dataType")
    if not isinstance(data_type, str) or data_type not in datatypes:
        reason = (
            "dataType is missing"
            if data_type is None
            else f"unknown dataType {clip_value(data_type)!r}"
        )
        problems.append(
            _problem(f"{where}.dataType", f"{where}: {reason}", data_type, "enum")
        )
        raise _error(problems)
    start_date = now_ms() if now is None else now
    draft = ArtifactDraft(data_type, None, None, [], default_tlp, False, start_date)
    _check_common(raw, where, draft, problems)
    _check_data(raw, where, draft, max_file_size, problems)
    if problems:
        raise _error(problems)
    return draft


def _check_common(
    raw: Mapping[str, Any],
    where: str,
    draft: ArtifactDraft,
    problems: list[AttributeProblem],
) -> None:
    for name, attribute in _ARTIFACT_ATTRIBUTES:
        value = raw.get(name)
        if value is None or value == []:
            continue
        try:
            setattr(draft, name, attrs.convert_value(attribute, value))
        except ValueError as exc:
            problems.append(_problem(f"{where}.{name}", f"{where}: {exc}", value))
    start_date = raw.get("startDate")
    if start_date is not None:
        try:
            draft.start_date = parse_date(start_date)
        except ValueError as exc:
            problems.append(
                _problem(f"{where}.startDate", f"{where}: {exc}", start_date)
            )
    # Limitation: alert artifacts do not keep `sighted`, because the alert
    # artifact table has no such column; thehive4py sends false with every
    # artifact, which is accepted, and true is refused rather than lost (#4).
    if raw.get("sighted") not in (None, False):
        problems.append(
            _problem(
                f"{where}.sighted",
                f"{where}: alert artifacts cannot be marked sighted; "
                "mark the observable once the alert is imported",
                raw["sighted"],
            )
        )


def _check_data(
    raw: Mapping[str, Any],
    where: str,
    draft: ArtifactDraft,
    max_file_size: int,
    problems: list[AttributeProblem],
) -> None:
    data = raw.get("data")
    if draft.data_type == "file":
        _check_file(raw, where, draft, max_file_size, problems)
    elif raw.get("attachment") is not None:
        problems.append(
            _problem(
                f"{where}.attachment",
                f"{where}: only file artifacts carry an attachment",
                raw["attachment"],
            )
        )
    elif not isinstance(data, str):
        problems.append(
            _problem(f"{where}.data", f"{where}: data must be a string", data)
        )
    else:
        try:
            draft.data = normalise_observable(draft.data_type, data)
        except InvalidObservableValue as exc:
            problems.append(
                _problem(f"{where}.data", f"{where}: {exc}", data, draft.data_type)
            )


def _check_file(
    raw: Mapping[str, Any],
    where: str,
    draft: ArtifactDraft,
    max_file_size: int,
    problems: list[AttributeProblem],
) -> None:
    data, attachment = raw.get("data"), raw.get("attachment")
    if isinstance(data, str) and attachment is None:
        try:
            draft.file = decode_file_data(data, max_file_size)
        except ValueError as exc:
            problems.append(
                _problem(f"{where}.data", f"{where}: {exc}", data, "name;mime;base64")
            )
    elif isinstance(attachment, Mapping) and data is None:
        _check_attachment_reference(attachment, where, draft, problems)
    else:
        problems.append(
            _problem(
                f"{where}.data",
                f"{where}: a file artifact needs data 'name;mime;base64' "
                "or the attachment of a stored file",
                data if data is not None else attachment,
            )
        )


def _check_attachment_reference(
    attachment: Mapping[str, Any],
    where: str,
    draft: ArtifactDraft,
    problems: list[AttributeProblem],
) -> None:
    identifier = attachment.get("id")
    name = attachment.get("name")
    if (
        not isinstance(identifier, str)
        or len(identifier) != 64
        or not set(identifier) <= _SHA256_HEX
        or not isinstance(name, str)
    ):
        problems.append(
            _problem(
                f"{where}.attachment",
                f"{where}: attachment needs the id (SHA-256) and name of a stored file",
                attachment,
            )
        )
        return
    draft.attachment_id = identifier
    draft.attachment_name = name[:512]
    content_type = attachment.get("contentType")
    draft.attachment_content_type = (
        content_type[:256] if isinstance(content_type, str) else None
    )


def decode_file_data(data: str, max_size: int) -> FileContent:
    """Decodes a file artifact's ``name;mime;base64`` value.

    Raises ValueError saying which part is wrong: a missing part, a
    malformed name or base64 that does not decode, or content over
    ``max_size`` bytes.
    """
    parts = data.split(";", 2)
    if len(parts) != 3:
        raise ValueError("file data must be 'name;mime;base64'")
    name, content_type, encoded = parts
    if not name or len(name) > 512 or any(c in name for c in "/\\\n\r\t\x00"):
        raise ValueError(f"file name {name[:80]!r} is not a usable file name")
    if len(encoded) > (max_size // 3 + 1) * 4 + len(encoded) // 60 + 4:
        raise ValueError(f"the file is larger than {max_size} bytes")
    try:
        content = base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("malformed base64 in the file content") from None
    if len(content) > max_size:
        raise ValueError(f"the file is larger than {max_size} bytes")
    return FileContent(
        name, content_type.strip()[:256] or "application/octet-stream", content
    )


def merge_duplicates(drafts: list[ArtifactDraft]) -> list[ArtifactDraft]:
    """Returns ``drafts`` with repeats of one (datatype, value) folded into
    the first: tags joined, IOC if any says so, the first message kept."""
    kept: dict[tuple[str, str], ArtifactDraft] = {}
    for draft in drafts:
        key = (draft.data_type, artifact_value_key(draft))
        first = kept.get(key)
        if first is None:
            kept[key] = draft
            continue
        first.tags = list(dict.fromkeys(first.tags + draft.tags))
        first.ioc = first.ioc or draft.ioc
        first.message = first.message or draft.message
    return list(kept.values())


def artifact_value_key(draft: ArtifactDraft) -> str:
    """Returns what identifies a draft's value within its datatype: the
    value, or the SHA-256 of a file."""
    if draft.file is not None:
        return draft.file.sha256
    if draft.attachment_id is not None:
        return draft.attachment_id
    assert draft.data is not None
    return draft.data


def status_after_read(case_id: str | None) -> str:
    """TheHive's markAsRead: Imported when the alert has a case, else Ignored."""
    return "Imported" if case_id else "Ignored"


def status_after_unread(case_id: str | None) -> str:
    """TheHive's markAsUnread: Updated when the alert has a case, else New."""
    return "Updated" if case_id else "New"


def status_after_change(status: str, follow: bool) -> str:
    """The status of an alert whose content changed: a followed alert that
    was already looked at becomes Updated; a New one stays New."""
    if follow and status != "New":
        return "Updated"
    return status


def _problem(
    name: str, message: str, value: Any, fmt: str = "string"
) -> AttributeProblem:
    return AttributeProblem(
        "InvalidFormatAttributeError",
        name,
        message,
        value=clip_value(value),
        format=fmt,
    )


def _error(problems: list[AttributeProblem]) -> AttributeCheckingError:
    return AttributeCheckingError(TABLE, problems)
