"""Fills a Cerana database with realistic cases, tasks and observables.

    python -m bench.generate --database-url sqlite:////tmp/bench/cerana.db \\
        --cases 100000 --observables 1000000 --tasks 300000

The schema is migrated and the platform seeded (organisation, datatypes,
administrator) by the application itself; the bulk rows then go straight
into the tables with executemany, one transaction per batch, which is what
turns millions of rows into minutes rather than hours.

The shape of the data is what the benchmarks rely on:

- case statuses: about 70 % Open, 28 % Resolved, 2 % Deleted, start dates
  spread over three years, owners among 30 analysts;
- 200 tags with a Zipf skew: "phishing" is on a large share of the cases,
  the rarest on about 200 of 100,000;
- observables of types ip, domain, url, hash, mail and filename; the
  distinct values number 30 % of the observables, and 30 % of those recur
  in several cases (a few in thousands), so "similar observables" finds
  matches for most observables, as in a real SOC where the same
  infrastructure keeps coming back.

The same seed gives the same data, ids included.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypeVar

from sqlalchemy import Connection, Table, func, insert, select, update
from sqlalchemy.engine import make_url

from cerana.config import Settings, load_settings
from cerana.domain.datatypes import normalise_observable
from cerana.domain.dates import now_ms
from cerana.domain.identifiers import ids_at
from cerana.platform import Platform
from cerana.services import users
from cerana.services.context import system_actor
from cerana.services.observables import data_key
from cerana.store import tables
from cerana.store.db import Database

T = TypeVar("T")

DEFAULT_ADMIN_PASSWORD = "cerana-bench-admin"
DEFAULT_BATCH_SIZE = 5_000

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
SPAN_MS = 3 * 365 * DAY_MS

# Distinct values as a share of all observables, and the share of those
# distinct values that recur in more than one case.
DISTINCT_RATIO = 0.3
RECURRING_RATIO = 0.3
# A recurring value is drawn as pool[int(len(pool) * u ** VALUE_SKEW)]: with
# 2.0 the most frequent value is in about one case in 40.
VALUE_SKEW = 2.0
# Fresh values are checked against the real normaliser one in this many.
NORMALISE_SAMPLE = 101

Batch = list[tuple[Table, list[dict[str, Any]]]]


class DatabaseNotEmpty(Exception):
    """The target database already holds cases and --force was not given."""


@dataclass(frozen=True)
class Volume:
    """How many rows of each kind to generate."""

    cases: int
    observables: int
    tasks: int


@dataclass
class GenerationReport:
    """What was written: rows per table, and how long it took."""

    volume: Volume
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class Weighted(Generic[T]):
    """Values with relative weights, drawn with one bisection each."""

    values: tuple[T, ...]
    cumulative: tuple[float, ...]

    @classmethod
    def of(cls, weights: Mapping[T, float]) -> Weighted[T]:
        return cls(tuple(weights), tuple(itertools.accumulate(weights.values())))

    @classmethod
    def zipf(cls, values: Sequence[T], exponent: float) -> Weighted[T]:
        return cls.of({v: 1 / (rank**exponent) for rank, v in enumerate(values, 1)})

    def pick(self, rng: random.Random) -> T:
        point = rng.random() * self.cumulative[-1]
        return self.values[bisect.bisect_right(self.cumulative, point)]

    def pick_distinct(self, rng: random.Random, count: int) -> list[T]:
        drawn = rng.choices(self.values, cum_weights=self.cumulative, k=count)
        return list(dict.fromkeys(drawn))


class Observed(NamedTuple):
    data_type: str
    value: str
    key: str


@dataclass(slots=True)
class CasePlan:
    """What tasks and observables need to know about their case."""

    id: str
    start: int
    status: str
    owner: str


# -- vocabulary ---------------------------------------------------------------


def _vocabulary(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Ordered by how common they are: the first is the most frequent.
BASE_TAGS = _vocabulary("""
    phishing malware spam credential-theft ransomware c2 bec brute-force apt
    data-exfiltration o365 powershell emotet qakbot cobalt-strike mimikatz
    lateral-movement privilege-escalation persistence cryptominer botnet
    trojan macro pdf zip usb vpn azure-ad aws edr siem ids firewall proxy dns
    email endpoint server workstation mobile vip external internal misp cortex
    threat-intel hunting pentest insider ddos vulnerability web-attack
    sql-injection xss tlp:amber tlp:green tlp:red pap:amber gdpr fraud
""")
CUSTOMERS = _vocabulary("""
    acme globex initech umbrella hooli stark wayne wonka tyrell cyberdyne
    soylent oscorp aperture massive-dynamic vandelay dunder-mifflin pied-piper
    gringotts monarch nakatomi
""")
TAG_COUNT = 200
FIRST_NAMES = _vocabulary("""
    alice bruno chloe david emma farid grace hugo ines jonas karim lea marc
    nora oscar paula quentin rosa samir tina ugo vera wen xavier yasmin zoe
    anton bea cyril dora
""")
LAST_NAMES = _vocabulary("""
    martin bernard dubois thomas robert richard petit durand leroy moreau
    simon laurent lefebvre michel garcia david bertrand roux vincent fournier
""")
WORDS = _vocabulary("""
    secure login update account mail cloud office bank pay verify support
    service portal online web data file share drive doc invoice track ship
    delivery auth sso id micro soft cdn static api app my get free alpha nova
    blue red
""")
TLDS = _vocabulary("""
    com net org info ru cn xyz top io biz co online site club de fr uk
""")
EXTENSIONS = ("exe", "dll", "pdf", "docm", "xlsm", "zip", "js", "vbs", "ps1", "lnk")
TITLES = (
    "Phishing e-mail reported by {who}",
    "Malware alert on {host}",
    "Suspicious login for {who}",
    "Outbound traffic to known C2 from {host}",
    "Ransomware note found on {host}",
    "Brute-force attempts against {host}",
    "Data leak suspicion involving {who}",
    "EDR detection: {tool} on {host}",
    "Unusual PowerShell activity on {host}",
    "Credential phishing campaign targeting {who}",
)
SENTENCES = (
    "The alert was raised by the {tool} integration at the start of the shift.",
    "{who} forwarded the message to the SOC mailbox and did not open the attachment.",
    "The host {host} was isolated from the network pending analysis.",
    "Several indicators match the threat intelligence feed shared last week.",
    "No lateral movement was observed so far in the proxy and DNS logs.",
    "The user reset their password and the active sessions were revoked.",
    "A sample was submitted to the sandbox; the report is attached to task 2.",
    "The business owner was informed and agreed to the containment plan.",
)
TOOLS = ("Defender", "CrowdStrike", "Suricata", "Zeek", "Sysmon", "Splunk", "Sigma")
TASK_TITLES = (
    "Triage",
    "Collect evidence",
    "Analyse indicators",
    "Contain",
    "Eradicate",
    "Recover",
    "Notify stakeholders",
    "Lessons learned",
)
OBSERVABLE_MESSAGES = (
    "Seen in the e-mail headers",
    "Extracted from the sandbox report",
    "From the proxy logs",
    "Reported by the EDR",
    "Listed in the threat intelligence feed",
    "Found in the DNS logs",
)

CASE_STATUS = Weighted.of({"Open": 70, "Resolved": 28, "Deleted": 2})
SEVERITY = Weighted.of({1: 30, 2: 50, 3: 20})
TLP = Weighted.of({0: 10, 1: 20, 2: 55, 3: 15})
RESOLUTION = Weighted.of(
    {
        "TruePositive": 40,
        "FalsePositive": 35,
        "Indeterminate": 15,
        "Other": 8,
        "Duplicated": 2,
    }
)
IMPACT = Weighted.of({"NoImpact": 50, "WithImpact": 30, "NotApplicable": 20})
OPEN_TASK_STATUS = Weighted.of({"Waiting": 40, "InProgress": 30, "Completed": 30})
CLOSED_TASK_STATUS = Weighted.of({"Completed": 90, "Cancel": 10})
DATATYPE = Weighted.of(
    {"ip": 25, "domain": 20, "url": 15, "hash": 20, "mail": 10, "filename": 10}
)
TAGS_PER_CASE = Weighted.of({1: 25, 2: 35, 3: 25, 4: 10, 5: 5})
TAGS_PER_OBSERVABLE = Weighted.of({0: 50, 1: 35, 2: 15})


def tag_vocabulary() -> list[str]:
    """Returns the 200 tags, most common first."""
    tags = list(BASE_TAGS) + [f"customer:{name}" for name in CUSTOMERS]
    tags += [f"campaign:{2022 + n % 3}-{n:03d}" for n in range(TAG_COUNT - len(tags))]
    return tags


def owner_logins() -> list[str]:
    """Returns the 30 analysts' logins, busiest first."""
    return [
        f"{first}.{LAST_NAMES[n % len(LAST_NAMES)]}"
        for n, first in enumerate(FIRST_NAMES)
    ]


@dataclass(frozen=True)
class Vocabulary:
    case_tags: Weighted[str]
    observable_tags: Weighted[str]
    owners: Weighted[str]


def build_vocabulary() -> Vocabulary:
    tags = tag_vocabulary()
    return Vocabulary(
        case_tags=Weighted.zipf(tags, 1.0),
        observable_tags=Weighted.zipf(tags[:40], 1.0),
        owners=Weighted.zipf(owner_logins(), 0.5),
    )


# The clock of generated ids: one millisecond per id from a fixed start in
# the past, so ids come in insertion order, as the application's do, and
# the same seed gives the same ids.
_ID_CLOCK = itertools.count(1_600_000_000_000)


def new_id(rng: random.Random) -> str:
    """Returns a 20-character id like the application's, but reproducible:
    time-ordered in generation order, with the random part from ``rng``."""
    return ids_at(next(_ID_CLOCK), rng.randbytes(9))[0]


# -- observable values --------------------------------------------------------
# Recurring values contain no digits outside IPs and hashes and fresh ones
# carry a serial number, so a fresh value never equals a recurring one: a case
# can then never get the same value twice, which its unique index forbids.


def _host(rng: random.Random) -> str:
    return (
        f"{rng.choice(WORDS)}-{rng.choice(WORDS)}{rng.choice(WORDS)}.{rng.choice(TLDS)}"
    )


def _digest(rng: random.Random) -> str:
    bits = rng.choice((128, 160, 256, 256))
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


def _recurring_value(rng: random.Random, data_type: str) -> str:
    if data_type == "ip":
        return ".".join(
            str(n) for n in (rng.randint(1, 99), *rng.choices(range(256), k=3))
        )
    if data_type == "domain":
        return _host(rng)
    if data_type == "url":
        return f"https://{_host(rng)}/{rng.choice(WORDS)}/{rng.choice(WORDS)}.php"
    if data_type == "hash":
        return _digest(rng)
    if data_type == "mail":
        return f"{rng.choice(FIRST_NAMES)}.{rng.choice(LAST_NAMES)}@{_host(rng)}"
    return f"{rng.choice(WORDS)}_{rng.choice(WORDS)}.{rng.choice(EXTENSIONS)}"


# Public-looking IPv4 space from 100.0.0.0 up, walked in a scrambled order: the
# multiplier is prime, so coprime with the size of the space.
_FRESH_IP_BASE = 100 << 24
_FRESH_IP_SPACE = 124 << 24
_FRESH_IP_STEP = 2_654_435_761


def _fresh_value(rng: random.Random, data_type: str, serial: int) -> str:
    if data_type == "ip":
        n = _FRESH_IP_BASE + (serial * _FRESH_IP_STEP) % _FRESH_IP_SPACE
        return ".".join(str((n >> shift) & 255) for shift in (24, 16, 8, 0))
    word = rng.choice(WORDS)
    if data_type == "domain":
        return f"{word}{rng.choice(WORDS)}{serial}.{rng.choice(TLDS)}"
    if data_type == "url":
        return f"http://{_host(rng)}/{word}?id={serial}"
    if data_type == "hash":
        return _digest(rng)
    if data_type == "mail":
        return f"{rng.choice(FIRST_NAMES)}{serial}@{_host(rng)}"
    return f"{word}_{serial}.{rng.choice(EXTENSIONS)}"


def _observed(data_type: str, value: str) -> Observed:
    return Observed(data_type, value, data_key(value))


def recurring_values(rng: random.Random, count: int) -> list[Observed]:
    """Returns ``count`` distinct values, normalised by the application's rules."""
    seen: set[tuple[str, str]] = set()
    pool: list[Observed] = []
    while len(pool) < count:
        data_type = DATATYPE.pick(rng)
        value = normalise_observable(data_type, _recurring_value(rng, data_type))
        if (data_type, value) not in seen:
            seen.add((data_type, value))
            pool.append(_observed(data_type, value))
    return pool


class ValuePool:
    """Draws observable values: recurring ones (skewed) or fresh ones."""

    def __init__(self, rng: random.Random, observables: int) -> None:
        distinct = max(1, round(observables * DISTINCT_RATIO))
        recurring = max(1, round(distinct * RECURRING_RATIO))
        self.fresh_share = (distinct - recurring) / max(1, observables)
        self.recurring = recurring_values(rng, recurring)
        self._serials = itertools.count(1)

    def draw(self, rng: random.Random, taken: set[tuple[str, str]]) -> Observed:
        """Returns a value whose (type, key) is not in ``taken``."""
        if rng.random() >= self.fresh_share:
            index = int(len(self.recurring) * rng.random() ** VALUE_SKEW)
            candidate = self.recurring[index]
            if (candidate.data_type, candidate.key) not in taken:
                return candidate
        return self._fresh(rng)

    def _fresh(self, rng: random.Random) -> Observed:
        serial = next(self._serials)
        data_type = DATATYPE.pick(rng)
        value = _fresh_value(rng, data_type, serial)
        if (
            serial % NORMALISE_SAMPLE == 0
            and normalise_observable(data_type, value) != value
        ):
            raise RuntimeError(f"generated {data_type} value {value!r} is not normal")
        return _observed(data_type, value)


# -- rows ---------------------------------------------------------------------


def _record_fields(organisation: str, login: str, at: int) -> dict[str, Any]:
    return {
        "organisation": organisation,
        "created_by": login,
        "created_at": at,
        "updated_by": None,
        "updated_at": None,
        "version": 1,
    }


def _words(rng: random.Random, plan: CasePlan) -> dict[str, str]:
    return {
        "who": plan.owner.split(".")[0].title(),
        "host": f"ws-{rng.randint(1000, 9999)}",
        "tool": rng.choice(TOOLS),
    }


def _case_row(
    rng: random.Random, plan: CasePlan, number: int, tags: list[str], organisation: str
) -> dict[str, Any]:
    words = _words(rng, plan)
    sentences = rng.sample(SENTENCES, rng.randint(2, 4))
    row: dict[str, Any] = {
        "id": plan.id,
        "number": number,
        "title": rng.choice(TITLES).format(**words),
        "description": " ".join(s.format(**words) for s in sentences),
        "severity": SEVERITY.pick(rng),
        "owner": plan.owner,
        "start_date": plan.start,
        "end_date": None,
        "flag": rng.random() < 0.05,
        "tlp": TLP.pick(rng),
        "status": plan.status,
        "resolution_status": None,
        "impact_status": None,
        "summary": None,
        "merge_into": None,
        "merge_from": None,
        "metrics": {},
        "custom_fields": {},
        "tags": tags,
        **_record_fields(
            organisation, plan.owner, plan.start + rng.randint(0, HOUR_MS)
        ),
    }
    if plan.status != "Open":
        _close_case(rng, row)
    return row


def _close_case(rng: random.Random, row: dict[str, Any]) -> None:
    closed_at = row["start_date"] + rng.randint(HOUR_MS, 30 * DAY_MS)
    row.update(updated_by=row["owner"], updated_at=closed_at, version=2)
    if row["status"] == "Resolved":
        row.update(
            end_date=closed_at,
            flag=False,
            resolution_status=RESOLUTION.pick(rng),
            impact_status=IMPACT.pick(rng),
            summary="Closed after analysis; see the task logs for the details.",
        )


def plan_cases(
    rng: random.Random, vocabulary: Vocabulary, count: int, now: int
) -> list[CasePlan]:
    """Returns the cases to create, oldest first (case numbers follow)."""
    starts = sorted(now - rng.randrange(SPAN_MS) for _ in range(count))
    return [
        CasePlan(new_id(rng), start, CASE_STATUS.pick(rng), vocabulary.owners.pick(rng))
        for start in starts
    ]


def case_batches(
    rng: random.Random,
    plans: Sequence[CasePlan],
    vocabulary: Vocabulary,
    first_number: int,
    organisation: str,
    batch_size: int,
) -> Iterator[Batch]:
    """Yields batches of case rows and their tag rows."""
    for start in range(0, len(plans), batch_size):
        cases: list[dict[str, Any]] = []
        tags: list[dict[str, Any]] = []
        for offset, plan in enumerate(plans[start : start + batch_size]):
            chosen = vocabulary.case_tags.pick_distinct(rng, TAGS_PER_CASE.pick(rng))
            number = first_number + start + offset
            cases.append(_case_row(rng, plan, number, chosen, organisation))
            tags += ({"case_id": plan.id, "tag": tag} for tag in chosen)
        yield [(tables.case, cases), (tables.case_tag, tags)]


def spread(rng: random.Random, total: int, buckets: int, sigma: float) -> list[int]:
    """Splits ``total`` items over ``buckets`` with log-normal weights: most
    buckets get about the mean, a few get many times more."""
    if buckets == 0:
        return []
    weights = list(
        itertools.accumulate(rng.lognormvariate(0, sigma) for _ in range(buckets))
    )
    counts = Counter(rng.choices(range(buckets), cum_weights=weights, k=total))
    return [counts.get(index, 0) for index in range(buckets)]


def _task_row(
    rng: random.Random, plan: CasePlan, order: int, organisation: str
) -> dict[str, Any]:
    statuses = OPEN_TASK_STATUS if plan.status == "Open" else CLOSED_TASK_STATUS
    status = statuses.pick(rng)
    started = None if status == "Waiting" else plan.start + rng.randint(0, DAY_MS)
    ended = (
        started + rng.randint(HOUR_MS, 5 * DAY_MS)
        if started and status != "InProgress"
        else None
    )
    return {
        "id": new_id(rng),
        "case_id": plan.id,
        "title": TASK_TITLES[order % len(TASK_TITLES)],
        "description": "Follow the playbook step and log what was done.",
        "owner": None if status == "Waiting" else plan.owner,
        "status": status,
        "flag": rng.random() < 0.03,
        "start_date": started,
        "end_date": ended,
        "order": order,
        "due_date": None,
        "group": "default",
        **_record_fields(
            organisation, plan.owner, plan.start + rng.randint(0, HOUR_MS)
        ),
    }


def task_batches(
    rng: random.Random,
    plans: Sequence[CasePlan],
    counts: Sequence[int],
    organisation: str,
    batch_size: int,
) -> Iterator[Batch]:
    """Yields batches of task rows, ``counts[i]`` for the case ``plans[i]``."""
    rows: list[dict[str, Any]] = []
    for plan, count in zip(plans, counts, strict=True):
        rows += (_task_row(rng, plan, order, organisation) for order in range(count))
        if len(rows) >= batch_size:
            yield [(tables.task, rows)]
            rows = []
    if rows:
        yield [(tables.task, rows)]


def _observable_row(
    rng: random.Random,
    plan: CasePlan,
    observed: Observed,
    tags: list[str],
    organisation: str,
) -> dict[str, Any]:
    seen_at = plan.start + rng.randint(0, 2 * DAY_MS)
    return {
        "id": new_id(rng),
        "case_id": plan.id,
        "data_type": observed.data_type,
        "data": observed.value,
        "data_key": observed.key,
        "message": rng.choice(OBSERVABLE_MESSAGES),
        "start_date": seen_at,
        "tlp": TLP.pick(rng),
        "ioc": rng.random() < 0.25,
        "sighted": rng.random() < 0.10,
        "status": "Deleted" if rng.random() < 0.02 else "Ok",
        "reports": {},
        "tags": tags,
        "attachment_id": None,
        "attachment_name": None,
        "attachment_content_type": None,
        **_record_fields(organisation, plan.owner, seen_at),
    }


class _ObservableBatch:
    def __init__(self) -> None:
        self.observables: list[dict[str, Any]] = []
        self.tags: list[dict[str, Any]] = []
        self.hashes: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self.observables.append(row)
        self.tags += ({"observable_id": row["id"], "tag": tag} for tag in row["tags"])
        if row["data_type"] == "hash":
            self.hashes.append(
                {"observable_id": row["id"], "hash": row["data"], "data_type": "hash"}
            )

    def tables(self) -> Batch:
        return [
            (tables.observable, self.observables),
            (tables.observable_tag, self.tags),
            (tables.observable_hash, self.hashes),
        ]


def observable_batches(
    rng: random.Random,
    plans: Sequence[CasePlan],
    counts: Sequence[int],
    pool: ValuePool,
    vocabulary: Vocabulary,
    organisation: str,
    batch_size: int,
) -> Iterator[Batch]:
    """Yields batches of observables with their tag and hash rows."""
    batch = _ObservableBatch()
    for plan, count in zip(plans, counts, strict=True):
        taken: set[tuple[str, str]] = set()
        for _ in range(count):
            observed = pool.draw(rng, taken)
            taken.add((observed.data_type, observed.key))
            tags = vocabulary.observable_tags.pick_distinct(
                rng, TAGS_PER_OBSERVABLE.pick(rng)
            )
            batch.add(_observable_row(rng, plan, observed, tags, organisation))
        if len(batch.observables) >= batch_size:
            yield batch.tables()
            batch = _ObservableBatch()
    if batch.observables:
        yield batch.tables()


# -- writing ------------------------------------------------------------------


class Progress:
    """Prints rows written and the rate, at most every two seconds."""

    def __init__(self, label: str, total: int) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.started = self.shown = time.perf_counter()

    def advance(self, rows: int) -> None:
        self.done += rows
        now = time.perf_counter()
        if now - self.shown >= 2.0 or self.done >= self.total:
            self.shown = now
            rate = self.done / max(now - self.started, 1e-9)
            print(
                f"  {self.label}: {self.done:,}/{self.total:,} ({rate:,.0f} rows/s)",
                flush=True,
            )


def write_batches(
    db: Database, progress: Progress, batches: Iterable[Batch], rows: Counter[str]
) -> None:
    """Writes each batch in its own transaction; counts rows per table."""
    for batch in batches:
        with db.write() as conn:
            if not db.is_sqlite:
                # A crash loses the last batches, not consistency: fine here.
                conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
            for table, table_rows in batch:
                if table_rows:
                    conn.execute(insert(table), table_rows)
                rows[table.name] += len(table_rows)
        progress.advance(len(batch[0][1]))


def existing_cases(db: Database, organisation: str) -> tuple[int, int]:
    """Returns (how many cases, highest case number) in ``organisation``."""
    case = tables.case
    with db.read() as conn:
        count, highest = conn.execute(
            select(func.count(), func.max(case.c.number)).where(
                case.c.organisation == organisation
            )
        ).one()
    return int(count), int(highest or 0)


def create_owners(conn: Connection, organisation: str) -> int:
    """Creates the analysts' accounts that are missing; returns how many."""
    present = set(conn.execute(select(tables.user.c.id)).scalars())
    actor = system_actor(organisation)
    missing = [login for login in owner_logins() if login not in present]
    for login in missing:
        name = " ".join(part.title() for part in login.split("."))
        users.create_user(
            conn, actor, {"login": login, "name": name, "roles": ["read", "write"]}
        )
    return len(missing)


def advance_case_sequence(
    conn: Connection, organisation: str, last_number: int
) -> None:
    """Makes the next case created through the API get a number after ours."""
    seq = tables.sequence
    where = (seq.c.organisation == organisation, seq.c.name == "case")
    current = conn.execute(select(seq.c.value).where(*where)).scalar()
    if current is None:
        conn.execute(
            insert(seq).values(
                organisation=organisation, name="case", value=last_number
            )
        )
    elif current < last_number:
        conn.execute(update(seq).where(*where).values(value=last_number))


def analyze(db: Database) -> None:
    """Refreshes the planner's statistics, as a database in service has them."""
    with db.write() as conn:
        conn.exec_driver_sql("ANALYZE")
    if db.is_sqlite:
        raw = db.engine.raw_connection()
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()


def bench_settings(database_url: str, data_dir: Path, admin_password: str) -> Settings:
    """Returns the settings a server on this data folder and database reads."""
    return load_settings(
        environ={
            "CERANA_DATA_DIR": str(data_dir),
            "CERANA_DATABASE_URL": database_url,
            "CERANA_ADMIN_PASSWORD": admin_password,
        }
    )


def prepare_platform(settings: Settings) -> None:
    """Migrates the schema and seeds organisation, datatypes, admin and analysts."""
    platform = Platform.open(settings)
    try:
        platform.prepare()
        with platform.db.write() as conn:
            create_owners(conn, settings.organisation)
    finally:
        platform.close()


def generate(
    database_url: str,
    volume: Volume,
    *,
    data_dir: Path,
    seed: int = 1,
    force: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    admin_password: str = DEFAULT_ADMIN_PASSWORD,
    run_analyze: bool = True,
) -> GenerationReport:
    """Migrates, seeds and fills the database at ``database_url``.

    Raises DatabaseNotEmpty when it holds cases already, unless ``force``:
    then the new cases are numbered after the existing ones.
    """
    started = time.perf_counter()
    settings = bench_settings(database_url, data_dir, admin_password)
    prepare_platform(settings)
    # Durability is pointless while loading: a failed load is started again.
    db = Database(database_url, sqlite_synchronous="OFF")
    try:
        report = _fill(db, settings.organisation, volume, seed, force, batch_size)
        if run_analyze:
            print("  analysing tables for the query planner", flush=True)
            analyze(db)
    finally:
        db.dispose()
    report.seconds = time.perf_counter() - started
    return report


def _fill(
    db: Database,
    organisation: str,
    volume: Volume,
    seed: int,
    force: bool,
    batch_size: int,
) -> GenerationReport:
    count, highest = existing_cases(db, organisation)
    if count and not force:
        raise DatabaseNotEmpty(
            f"the database already holds {count:,} cases; "
            "use --force to add more anyway"
        )
    # Appending with the seed of the first run would repeat its ids.
    rng = random.Random(f"{seed}+{count}" if count else seed)
    vocabulary = build_vocabulary()
    plans = plan_cases(rng, vocabulary, volume.cases, now_ms())
    rows: Counter[str] = Counter()

    cases = case_batches(rng, plans, vocabulary, highest + 1, organisation, batch_size)
    write_batches(db, Progress("cases", volume.cases), cases, rows)
    with db.write() as conn:
        advance_case_sequence(conn, organisation, highest + volume.cases)

    task_counts = spread(rng, volume.tasks, len(plans), sigma=0.5)
    tasks = task_batches(rng, plans, task_counts, organisation, batch_size)
    write_batches(db, Progress("tasks", volume.tasks), tasks, rows)

    print("  drawing the observable values", flush=True)
    pool = ValuePool(rng, volume.observables)
    observable_counts = spread(rng, volume.observables, len(plans), sigma=1.0)
    observables = observable_batches(
        rng, plans, observable_counts, pool, vocabulary, organisation, batch_size
    )
    write_batches(db, Progress("observables", volume.observables), observables, rows)
    return GenerationReport(volume=volume, rows=dict(rows))


# -- command line -------------------------------------------------------------


def default_data_dir(database_url: str) -> Path:
    """The folder of a SQLite file, else a folder for the secret key only."""
    url = make_url(database_url)
    if (
        url.get_backend_name() == "sqlite"
        and url.database
        and url.database != ":memory:"
    ):
        return Path(url.database).resolve().parent
    return Path("/tmp/cerana-bench-generate")


def add_volume_arguments(
    parser: argparse.ArgumentParser, scale: Callable[[int], int]
) -> None:
    """Adds --cases, --observables, --tasks and --seed (shared with bench.core)."""
    parser.add_argument(
        "--cases", type=int, default=scale(100_000), help="cases to generate"
    )
    parser.add_argument(
        "--observables",
        type=int,
        default=scale(1_000_000),
        help="observables to generate",
    )
    parser.add_argument(
        "--tasks", type=int, default=scale(300_000), help="tasks to generate"
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="random seed (same seed, same data)"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.generate",
        description="Fill a Cerana database with benchmark data.",
    )
    parser.add_argument(
        "--database-url", required=True, help="SQLAlchemy URL of the database"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="Cerana data folder (default: next to a SQLite file)",
    )
    add_volume_arguments(parser, lambda n: n)
    parser.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="rows per statement"
    )
    parser.add_argument(
        "--force", action="store_true", help="add data even if cases exist"
    )
    parser.add_argument(
        "--no-analyze", action="store_true", help="skip ANALYZE at the end"
    )
    return parser


def print_report(report: GenerationReport) -> None:
    total = sum(report.rows.values())
    rate = total / max(report.seconds, 1e-9)
    print(f"wrote {total:,} rows in {report.seconds:.1f} s ({rate:,.0f} rows/s)")
    for name, count in sorted(report.rows.items()):
        print(f"  {name:<16} {count:>12,}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    volume = Volume(cases=args.cases, observables=args.observables, tasks=args.tasks)
    print(
        f"generating {volume.cases:,} cases, {volume.observables:,} observables, "
        f"{volume.tasks:,} tasks"
    )
    try:
        report = generate(
            args.database_url,
            volume,
            data_dir=args.data_dir or default_data_dir(args.database_url),
            seed=args.seed,
            force=args.force,
            batch_size=args.batch_size,
            run_analyze=not args.no_analyze,
        )
    except DatabaseNotEmpty as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
