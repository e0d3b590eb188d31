"""The results of a review: what changed for whom, and why (rendered by render/diff.py)."""

from __future__ import annotations

from dataclasses import dataclass

Range = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Cause:
    """One policy difference that explains a change in access.

    ``kind`` is one of: portcon, rule, attribute, boolean, permissive, constraint,
    socket-label, class (a class or permission defined on one side only)."""

    kind: str
    summary: str  # one line, e.g. "portcon tcp 8080: http_cache_port_t -> http_port_t"
    before: tuple[str, ...] = ()  # the statements on the old side, pasteable
    after: tuple[str, ...] = ()  # the statements on the new side, pasteable


@dataclass(frozen=True, slots=True)
class Access:
    """The effective access of one (domain, operation, protocol, port) on one side.

    ``state``: denied | allowed | conditional | permissive | absent (no such domain);
    ``condition``: the canonical expression of the booleans under which it is allowed
    (conditional only; equal functions print equal); ``now``: allowed with the
    policy's boolean defaults."""

    state: str
    condition: str = ""
    now: bool = False

    def text(self) -> str:
        if self.state == "conditional":
            return f"allowed if {self.condition} (now {'allowed' if self.now else 'denied'})"
        if self.state == "permissive":
            return "allowed (permissive domain)"
        if self.state == "absent":
            return "no such domain"
        return self.state


@dataclass(frozen=True, slots=True)
class NetChange:
    """One (domain, operation, protocol, port ranges) whose access differs.

    ``direction``: gained (allowed under at least every setting it was, and now if it
    was now), lost (the reverse), changed (neither: different booleans)."""

    domain: str
    operation: str  # bind | connect
    protocol: str  # tcp | udp | sctp | dccp
    ports: tuple[Range, ...]
    before: Access
    after: Access
    direction: str
    causes: tuple[Cause, ...]


@dataclass(frozen=True, slots=True)
class PolicyDiff:
    old: str  # Policy.describe() of each side
    new: str
    old_provenance: dict[str, object]
    new_provenance: dict[str, object]
    changes: tuple[NetChange, ...]
    domains_compared: int
    seconds: float

    @property
    def equal(self) -> bool:
        return not self.changes

    def directions(self) -> set[str]:
        return {c.direction for c in self.changes}
