"""Who is acting, for which organisation, within which request."""

from __future__ import annotations

from dataclasses import dataclass, field

from cerana.domain.identifiers import new_request_id


@dataclass
class Actor:
    """The authenticated user behind a request or a CLI command.

    ``audited`` counts the audit records written for this request so that
    the first one is marked ``base``, as TheHive marks it.
    """

    login: str
    name: str
    roles: frozenset[str]
    organisation: str
    request_id: str = field(default_factory=new_request_id)
    audited: int = 0

    def has_role(self, role: str) -> bool:
        return role in self.roles


def system_actor(organisation: str) -> Actor:
    """The actor of work the platform does by itself (migrations, set-up)."""
    return Actor(
        "system", "System", frozenset({"read", "write", "admin"}), organisation
    )
