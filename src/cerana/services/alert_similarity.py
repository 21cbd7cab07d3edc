"""Where an alert's artifacts were seen before: similar cases and known
observables.

Every answer comes from an index, never from a scan: values are looked up
on ``(data_type, data_key)`` of case observables and alert artifacts, and
hashes (a ``hash`` artifact, or the three digests of a file) on
``observable_hash``, following TheHive's similarity rule: a hash matches
``hash`` observables and files carrying it, a file matches files and hashes
sharing a digest. Only live observables (status Ok) of live cases (not
Deleted, not resolved as Duplicated) count, as in TheHive.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Connection,
    Integer,
    RowMapping,
    Select,
    and_,
    bindparam,
    case,
    func,
    literal_column,
    or_,
    select,
    union,
    union_all,
)

from cerana.domain.datatypes import hash_kind
from cerana.services.observables import data_key
from cerana.store import models, records, tables
from cerana.store.rows import Row

Pair = tuple[str, str]  # (data_type, data_key)

# Limitation: "seen in N alerts" stops counting at this many, because each
# alert counted costs an index entry read and a busy feed's value sits in a
# large share of all alerts (#4); the answer says when it stopped
# (``alertsCapped``).
MAX_ALERTS_COUNTED = 1000


@dataclass(frozen=True)
class Probe:
    """What one alert artifact is looked up by: its (datatype, key), or the
    hash values of a ``hash`` or ``file`` artifact."""

    artifact_id: str
    data_type: str
    data_key: str
    hashes: tuple[str, ...] = ()

    def alert_pairs(self) -> list[Pair]:
        """The (datatype, key) pairs of alert artifacts that match this one."""
        if not self.hashes:
            return [(self.data_type, self.data_key)]
        # Limitation: an MD5 or SHA-1 hash does not find the alert file
        # artifacts carrying it, because alert files are indexed by SHA-256
        # only (no hash side table for alert artifacts, #4).
        pairs = [("hash", data_key(h)) for h in self.hashes]
        pairs += [("file", h) for h in self.hashes if len(h) == 64]
        return list(dict.fromkeys(pairs))


@dataclass(frozen=True)
class Known:
    """What is known of one artifact elsewhere.

    ``seen`` is TheHive's count of similar case observables; ``cases`` and
    ``alerts`` count the other cases and alerts holding it (``alerts`` at
    most `MAX_ALERTS_COUNTED`, ``alerts_capped`` telling there are more);
    ``ioc`` and ``sighted`` tell whether an analyst flagged it so in any of
    those cases (alert feeds set their own IOC flags, which are not
    counted).
    """

    seen: int = 0
    cases: int = 0
    alerts: int = 0
    alerts_capped: bool = False
    ioc: bool = False
    sighted: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "cases": self.cases,
            "alerts": self.alerts,
            "alertsCapped": self.alerts_capped,
            "ioc": self.ioc,
            "sighted": self.sighted,
        }


@dataclass(frozen=True)
class SimilarCase:
    """A live case sharing observables with an alert, with TheHive's counts."""

    case: RowMapping
    similar_artifacts: int
    similar_iocs: int
    artifact_count: int
    ioc_count: int


def probes_of(artifacts: Sequence[Row], attachments: Mapping[str, Row]) -> list[Probe]:
    """Returns the probe of each artifact row (``attachments`` by id give
    the digests of file artifacts)."""
    found = []
    for artifact in artifacts:
        hashes: tuple[str, ...] = ()
        if artifact["data_type"] == "hash" and hash_kind(artifact["data"] or ""):
            hashes = (artifact["data"],)
        elif artifact["attachment_id"]:
            stored = attachments.get(artifact["attachment_id"])
            hashes = (artifact["attachment_id"],)
            if stored is not None:
                hashes += (stored["sha1"], stored["md5"])
        found.append(
            Probe(artifact["id"], artifact["data_type"], artifact["data_key"], hashes)
        )
    return found


def similar_cases(
    conn: Connection, organisation: str, probes: Sequence[Probe], limit: int
) -> list[SimilarCase]:
    """Returns up to ``limit`` live cases holding observables similar to the
    probes, most shared observables first."""
    return _rank_cases(
        conn, organisation, _live_matches(conn, organisation, probes), limit
    )


def find_similarity(
    conn: Connection,
    organisation: str,
    alert_id: str,
    probes: Sequence[Probe],
    limit: int,
) -> tuple[dict[str, Known], list[SimilarCase]]:
    """Returns `known_observables` and `similar_cases` together, reading the
    matching observables once for both (the alert preview shows both)."""
    # Limitation: p95 9.5 to 12.6 ms at 500,000 alerts on a quiet machine,
    # but 23 to 39 ms under load or on PostgreSQL, above the 20 ms target,
    # because a value many alerts hold reads up to 1,001 index entries to
    # be counted, and up to max_similar_cases cases are fetched whole (#4).
    matches = _live_matches(conn, organisation, probes)
    known = _known(
        probes, matches, _known_in_alerts(conn, organisation, alert_id, probes)
    )
    return known, _rank_cases(conn, organisation, matches, limit)


def _rank_cases(
    conn: Connection,
    organisation: str,
    matches: Mapping[str, Mapping[str, _Match]],
    limit: int,
) -> list[SimilarCase]:
    shared: dict[str, _Match] = {}
    for found in matches.values():
        shared.update(found)
    counts: dict[str, list[int]] = {}
    for match in shared.values():
        count = counts.setdefault(match.case_id, [0, 0])
        count[0] += 1
        count[1] += match.ioc
    ranked = sorted(counts.items(), key=lambda item: (-item[1][0], item[0]))[:limit]
    ids = [case_id for case_id, _ in ranked]
    cases = records.fetch_many(conn, models.CASE, ids, organisation)
    totals = _observable_totals(conn, ids)
    return [
        SimilarCase(cases[case_id], count, iocs, *totals[case_id])
        for case_id, (count, iocs) in ranked
        if case_id in cases
    ]


def _observable_totals(
    conn: Connection, case_ids: list[str]
) -> dict[str, tuple[int, int]]:
    """Returns, per case, all its observables and those flagged IOC (any
    status, as TheHive counts them)."""
    if not case_ids:
        return {}
    observable = tables.observable
    rows = conn.execute(
        select(observable.c.case_id, func.count(), func.sum(_flag(observable.c.ioc)))
        .where(observable.c.case_id.in_(case_ids))
        .group_by(observable.c.case_id)
    )
    totals = {case_id: (0, 0) for case_id in case_ids}
    for case_id, count, iocs in rows:
        totals[case_id] = (int(count), int(iocs or 0))
    return totals


def known_observables(
    conn: Connection, organisation: str, alert_id: str, probes: Sequence[Probe]
) -> dict[str, Known]:
    """Returns, per artifact id, where else its value is known: similar
    observables of live cases and artifacts of the other alerts."""
    matches = _live_matches(conn, organisation, probes)
    return _known(
        probes, matches, _known_in_alerts(conn, organisation, alert_id, probes)
    )


def _known(
    probes: Sequence[Probe],
    matches: Mapping[str, Mapping[str, _Match]],
    in_alerts: Mapping[str, int],
) -> dict[str, Known]:
    known = {}
    for probe in probes:
        found = matches[probe.artifact_id].values()
        alerts = in_alerts.get(probe.artifact_id, 0)
        known[probe.artifact_id] = Known(
            len(found),
            len({match.case_id for match in found}),
            min(alerts, MAX_ALERTS_COUNTED),
            alerts > MAX_ALERTS_COUNTED,
            any(match.ioc for match in found),
            any(match.sighted for match in found),
        )
    return known


def cases_seen_in(
    conn: Connection, organisation: str, probes: Sequence[Probe], limit: int
) -> dict[str, list[RowMapping]]:
    """Returns, per artifact id, up to ``limit`` live cases holding a
    similar observable, highest case number first.

    One query per probe: pass only the probes `known_observables` found in
    some case, so an alert whose values are all new costs nothing here.
    """
    observable, case_table = tables.observable, tables.case
    case_ids: dict[str, list[str]] = {}
    for probe in probes:
        matching = _matching_observables([probe])
        if matching is None:
            continue
        rows = conn.execute(
            select(observable.c.case_id)
            .select_from(_with_case(observable))
            .where(observable.c.id.in_(matching), *_live(organisation))
            .group_by(observable.c.case_id)
            .order_by(func.max(case_table.c.number).desc())
            .limit(limit)
        ).all()
        case_ids[probe.artifact_id] = [row[0] for row in rows]
    wanted = list({i for ids in case_ids.values() for i in ids})
    cases = records.fetch_many(conn, models.CASE, wanted, organisation)
    return {
        artifact_id: [cases[i] for i in ids if i in cases]
        for artifact_id, ids in case_ids.items()
    }


@dataclass(frozen=True)
class _Match:
    """A live case observable similar to some probe."""

    case_id: str
    ioc: bool
    sighted: bool


def _live_matches(
    conn: Connection, organisation: str, probes: Sequence[Probe]
) -> dict[str, dict[str, _Match]]:
    """Returns, per artifact id, the live observables similar to its probe,
    by observable id: one query for the values, one for the hashes."""
    found: dict[str, dict[str, _Match]] = {p.artifact_id: {} for p in probes}
    by_pair: dict[Pair, list[str]] = {}
    by_hash: dict[str, list[str]] = {}
    for probe in probes:
        if not probe.hashes:
            pair = (probe.data_type, probe.data_key)
            by_pair.setdefault(pair, []).append(probe.artifact_id)
        for value in probe.hashes:
            by_hash.setdefault(value, []).append(probe.artifact_id)
    observable = tables.observable
    if by_pair:
        condition = _pairs_condition(observable, list(by_pair))
        pairs = _live_rows(conn, organisation, condition, observable.c.data_type)
        for obs_id, case_id, ioc, sighted, data_type, key in pairs:
            for artifact_id in by_pair[(data_type, key)]:
                found[artifact_id][obs_id] = _Match(case_id, bool(ioc), bool(sighted))
    if by_hash:
        holder = tables.observable_hash
        condition = holder.c.hash.in_(list(by_hash))
        hashes = _live_rows(conn, organisation, condition, holder.c.hash)
        for obs_id, case_id, ioc, sighted, value, _ in hashes:
            for artifact_id in by_hash[value]:
                found[artifact_id][obs_id] = _Match(case_id, bool(ioc), bool(sighted))
    return found


def _live_rows(
    conn: Connection,
    organisation: str,
    condition: ColumnElement[bool],
    label: Any,
) -> Sequence[Any]:
    """Live observables matching ``condition`` (on the observable, or on its
    hashes): id, case id, IOC, sighted, ``label`` and the data key."""
    observable, holder = tables.observable, tables.observable_hash
    joined = _with_case(observable)
    if label is holder.c.hash:
        joined = joined.join(holder, holder.c.observable_id == observable.c.id)
    return conn.execute(
        select(
            observable.c.id,
            observable.c.case_id,
            observable.c.ioc,
            observable.c.sighted,
            label,
            observable.c.data_key,
        )
        .select_from(joined)
        .where(condition, *_live(organisation))
    ).all()


def _known_in_alerts(
    conn: Connection, organisation: str, alert_id: str, probes: Sequence[Probe]
) -> dict[str, int]:
    """Counts, per probe, the other alerts holding it, up to one more than
    `MAX_ALERTS_COUNTED`: a value of a busy feed sits in a large share of
    all alerts, and counting them all would read that share. One statement
    per `_PROBES_PER_STATEMENT` probes."""
    found: dict[str, int] = {}
    # Probes of one pair first: fewer shapes of statement to build and keep.
    ordered = sorted(probes, key=lambda probe: len(probe.alert_pairs()))
    for start in range(0, len(ordered), _PROBES_PER_STATEMENT):
        chunk = ordered[start : start + _PROBES_PER_STATEMENT]
        pairs = [probe.alert_pairs() for probe in chunk]
        values: dict[str, Any] = {"organisation": organisation, "alert_id": alert_id}
        for number, probe_pairs in enumerate(pairs):
            for position, (data_type, key) in enumerate(probe_pairs):
                values[f"t{number}_{position}"] = data_type
                values[f"k{number}_{position}"] = key
        statement = _holders_statement(tuple(len(p) for p in pairs))
        for number, count in conn.execute(statement, values):
            found[chunk[number].artifact_id] = int(count)
    return found


# SQLite allows 500 terms in a compound SELECT.
_PROBES_PER_STATEMENT = 50


@functools.lru_cache(maxsize=256)
def _holders_statement(shape: tuple[int, ...]) -> CompoundSelect[Any]:
    """The counts of other alerts holding each probe, one UNION ALL term per
    probe (``shape`` gives how many (datatype, key) pairs each has).

    Built once per shape and kept: building it cost more than running it,
    and a kept statement keeps its compiled form.
    """
    artifact = tables.alert_artifact
    terms: list[Select[int, int]] = []
    for number, size in enumerate(shape):
        condition = or_(
            *(
                and_(
                    artifact.c.data_type == bindparam(f"t{number}_{position}"),
                    artifact.c.data_key == bindparam(f"k{number}_{position}"),
                )
                for position in range(size)
            )
        )
        holders = _count_holders(condition, distinct=size > 1).subquery()
        term = select(literal_column(str(number), Integer), func.count())
        terms.append(term.select_from(holders))
    return union_all(*terms)


def _count_holders(condition: ColumnElement[bool], *, distinct: bool) -> Select[Any]:
    """The other alerts (bound: organisation, alert_id) holding an artifact
    matching ``condition``, up to one more than the cap.

    An alert holds one (datatype, key) once (``uq_alert_artifact``), so a
    condition on one pair needs no DISTINCT, which halves the time SQLite
    spends on a value held by many alerts.
    """
    artifact = tables.alert_artifact
    holders = select(artifact.c.alert_id).where(
        condition,
        artifact.c.organisation == bindparam("organisation"),
        artifact.c.alert_id != bindparam("alert_id"),
    )
    if distinct:
        holders = holders.distinct()
    return holders.limit(MAX_ALERTS_COUNTED + 1)


def _matching_observables(probes: Sequence[Probe]) -> Select[Any] | None:
    """The ids of observables similar to any probe, or None for no probe."""
    observable = tables.observable
    pairs = [(p.data_type, p.data_key) for p in probes if not p.hashes]
    hashes = tuple(dict.fromkeys(h for p in probes for h in p.hashes))
    parts: list[Select[Any]] = []
    if pairs:
        parts.append(select(observable.c.id).where(_pairs_condition(observable, pairs)))
    if hashes:
        parts.append(_hash_holders(hashes))
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return select(union(*parts).subquery().c[0])


def _hash_holders(hashes: Sequence[str]) -> Select[Any]:
    holder = tables.observable_hash
    return select(holder.c.observable_id).where(holder.c.hash.in_(list(hashes)))


def _pairs_condition(table: Any, pairs: Sequence[Pair]) -> ColumnElement[bool]:
    # One OR branch per pair: SQLite turns it into one index probe each,
    # where a row-value IN list would make it scan the table.
    return or_(
        *(
            and_(table.c.data_type == data_type, table.c.data_key == key)
            for data_type, key in pairs
        )
    )


def _with_case(observable: Any) -> Any:
    return observable.join(tables.case, tables.case.c.id == observable.c.case_id)


def _live(organisation: str) -> tuple[ColumnElement[bool], ...]:
    case_table = tables.case
    return (
        tables.observable.c.status == "Ok",
        case_table.c.organisation == organisation,
        case_table.c.status != "Deleted",
        or_(
            case_table.c.resolution_status.is_(None),
            case_table.c.resolution_status != "Duplicated",
        ),
    )


def _flag(column: Any) -> Any:
    # Booleans become 0/1 so they can be summed and maxed on both backends.
    return case((column.is_(True), 1), else_=0)
