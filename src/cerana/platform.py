"""The running platform: settings, database and attachment store, built
once per process and shared by the API, the web UI and the CLI."""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field

from sqlalchemy import select

from cerana.auth.sessions import SessionCodec
from cerana.config import Settings
from cerana.domain.dates import now_ms
from cerana.queue import WorkQueue
from cerana.services import lists, users
from cerana.services.context import system_actor
from cerana.store import tables
from cerana.store.attachments import AttachmentStore
from cerana.store.db import Database

logger = logging.getLogger(__name__)

# Modules that register queued work (cerana.queue.register); they are
# imported before the queue is built so every worker knows every task.
WORK_MODULES: tuple[str, ...] = (
    "cerana.services.webhooks",
    "cerana.analysis.jobs",
    "cerana.connectors.cortex.autorun",
    "cerana.connectors.cortex.health",
    "cerana.connectors.cortex.jobs",
)


@dataclass
class Platform:
    settings: Settings
    db: Database
    store: AttachmentStore
    sessions: SessionCodec
    _queue: WorkQueue | None = field(default=None, repr=False)

    @property
    def queue(self) -> WorkQueue:
        """The work queue, built on first use with every registered task."""
        if self._queue is None:
            for module in WORK_MODULES:
                importlib.import_module(module)
            self._queue = WorkQueue(self.settings)
        return self._queue

    @classmethod
    def open(cls, settings: Settings) -> Platform:
        """Connects to the database and the attachment store of ``settings``."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return cls(
            settings=settings,
            db=Database(
                settings.effective_database_url,
                sqlite_synchronous=settings.sqlite_synchronous,
            ),
            store=AttachmentStore(settings.attachments_dir),
            sessions=SessionCodec(settings.secret_key, settings.session_inactivity),
        )

    def prepare(self) -> str | None:
        """Migrates the schema and seeds the organisation, the default
        datatypes and the first administrator.

        Returns the administrator's generated password when one was just
        created without a configured password, otherwise None.
        """
        self.db.migrate()
        return self.seed()

    def seed(self) -> str | None:
        """Creates the organisation, the default datatypes and the first
        administrator when missing; returns a generated admin password."""
        organisation = self.settings.organisation
        with self.db.write() as conn:
            known = conn.execute(
                select(tables.organisation.c.id).where(
                    tables.organisation.c.id == organisation
                )
            ).first()
            if known is None:
                conn.execute(
                    tables.organisation.insert().values(
                        id=organisation, name=organisation, created_at=now_ms()
                    )
                )
                logger.info("organisation %s created", organisation)
            added = lists.seed_datatypes(conn, organisation)
            if added:
                logger.info("%d default observable datatypes added", added)
            return users.ensure_admin(
                conn,
                system_actor(organisation),
                self.settings.admin_login,
                self.settings.admin_password,
            )

    def close(self) -> None:
        if self._queue is not None:
            self._queue.stop_workers()
        self.db.dispose()
