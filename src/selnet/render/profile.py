"""Text and JSON for domain profiles and port reports (selnet domain / selnet port)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from selnet.analyses.profiles import (
    Access,
    BooleanChange,
    BooleanSummary,
    ChangeSummary,
    ClientSide,
    DomainProfile,
    DomainSummary,
    NodeGrant,
    PortGrant,
    PortGroup,
    PortReport,
    PortUser,
    Range,
    RuleGroup,
    ServerSide,
    SideSummary,
    ranges_text,
    rule_groups,
)
from selnet.policy.snapshot import AVRule
from selnet.render.facts import label_json
from selnet.render.notes import notes_text


# -- JSON ----------------------------------------------------------------------------------------
def access_json(a: Access) -> dict[str, object]:
    return {
        "allowed": a.allowed,
        "condition": a.condition or None,
        "reason": a.reason,
        "constraint": a.constraint,
        "boolean_fixes": [dict(f) for f in a.fixes],
    }

LABELED_MEANING: dict[tuple[str, str], str] = {
    ("netif", "egress"): "packets out through an interface of this type (socket is the subject; "
    "checked only with labeled networking and network_peer_controls)",
    ("netif", "ingress"): "subject is the PEER label, not the domain: means something only if "
    "this domain is itself a peer label (e.g. labeled loopback)",
    ("node", "sendto"): "packets to addresses of this node type (socket is the subject; labeled "
    "networking only)",
    (
        "node",
        "recvfrom",
    ): "subject is the PEER label: only meaningful when this type is a peer label",
    ("peer", "recv"): "receive from peers with this label (checked once peer labeling is active)",
    ("packet", "send"): "send packets SECMARK-labeled with this type (SECMARK active)",
    ("packet", "recv"): "receive packets SECMARK-labeled with this type (SECMARK active)",
    ("packet", "forward_in"): "forwarded packets in (subject is the peer label)",
    ("packet", "forward_out"): "forwarded packets out (subject is the peer label)",
    ("packet", "relabelto"): "set SECMARK labels of this type (netfilter rules)",
    ("association", "sendto"): "labeled IPsec SA / compat unlabeled association out",
    ("association", "recvfrom"): "labeled IPsec SA / compat unlabeled association in",
    ("association", "polmatch"): "match IPsec SPD entries of this type",
    ("association", "setcontext"): "set the context of an IPsec SA",
}



def _ranges_json(ranges: Iterable[Range]) -> list[list[int]]:
    return [[lo, hi] for lo, hi in ranges]


def _port_grant_json(g: PortGrant) -> dict[str, object]:
    return {
        "type": g.type,
        "context": g.context,
        "ports": ranges_text(g.ranges),
        "ranges": _ranges_json(g.ranges),
        **access_json(g.access),
    }


def _node_grant_json(g: NodeGrant) -> dict[str, object]:
    return {
        "type": g.type,
        "context": g.context,
        "addresses": list(g.addresses),
        **access_json(g.access),
    }


def _perms_json(perms: Mapping[str, Access]) -> dict[str, object]:
    return {p: access_json(a) for p, a in perms.items()}


def _server_json(s: ServerSide) -> dict[str, object]:
    return {
        "protocol": s.protocol,
        "class": s.sclass,
        "socket": s.socket,
        "socket_perms": _perms_json(s.socket_perms),
        "name_bind": [_port_grant_json(g) for g in s.name_bind],
        "name_bind_ports": _ranges_json(s.name_bind_ports),
        "no_name_bind_needed": list(s.no_name_bind),
        "node_bind": [_node_grant_json(g) for g in s.node_bind],
        "bindable_on_0.0.0.0": _ranges_json(s.bindable),
    }


def _client_json(c: ClientSide) -> dict[str, object]:
    return {
        "protocol": c.protocol,
        "class": c.sclass,
        "socket": c.socket,
        "socket_perms": _perms_json(c.socket_perms),
        "port_checked": c.port_checked,
        "name_connect": [_port_grant_json(g) for g in c.name_connect],
        "name_connect_ports": _ranges_json(c.name_connect_ports),
        "reachable": _ranges_json(c.reachable),
    }


def _change_json(c: BooleanChange) -> dict[str, object]:
    return {"what": c.what, "type": c.type, "ports": ranges_text(c.ranges) or None}


def group_json(g: PortGroup) -> dict[str, object]:
    return {"attribute": g.attribute, "every_port_type": g.every, "types": list(g.types),
            "ports": ranges_text(g.ranges)}


def _side_summary_json(s: SideSummary) -> dict[str, object]:
    return {
        "protocol": s.protocol, "class": s.sclass, "perm": s.perm,
        "socket_denied": list(s.socket_denied), "port_checked": s.port_checked,
        "now": [group_json(g) for g in s.now], "port_types_under_booleans": s.later,
        "port_types_denied_by_constraint": s.blocked, "node_bind_now": list(s.nodes_now),
        "node_bind_under_booleans": list(s.nodes_later), "ports_now": _ranges_json(s.ports),
        "socket": s.socket,
    }


def _change_summary_json(c: ChangeSummary) -> dict[str, object]:
    return {"what": c.what, "groups": [group_json(g) for g in c.groups], "types": list(c.types)}


def summary_json(s: DomainSummary) -> dict[str, object]:
    return {
        "server": [_side_summary_json(x) for x in s.server],
        "client": [_side_summary_json(x) for x in s.client],
        "booleans": [
            {"name": b.name, "current": b.current,
             "when_on": [_change_summary_json(c) for c in b.when_on],
             "when_off": [_change_summary_json(c) for c in b.when_off]}
            for b in s.booleans
        ],
    }


def profile_json(p: DomainProfile, summary: DomainSummary | None = None) -> dict[str, object]:
    """The whole profile; with ``summary``, also its grouped form under "summary"."""
    extra = {"summary": summary_json(summary)} if summary is not None else {}
    return {
        "domain": p.domain,
        "environment": {
            "ip_local_port_range": list(p.env.local_port_range),
            "ip_unprivileged_port_start": p.env.unprivileged_port_start,
        },
        "capabilities": _perms_json(p.capabilities),
        "server": [_server_json(s) for s in p.server],
        "client": [_client_json(c) for c in p.client],
        "not_port_restricted": list(p.unrestricted_clients),
        "other_sockets": {cls: _perms_json(perms) for cls, perms in p.other_sockets.items()},
        "labeled_networking": [
            {
                "class": g.tclass,
                "perm": g.perm,
                "subject": g.subject,
                "targets": list(g.targets),
                "condition": g.condition or None,
                "meaning": LABELED_MEANING.get((g.tclass, g.perm), ""),
            }
            for g in p.labeled
        ],
        "obsolete": [
            {"class": o.tclass, "perm": o.perm, "rule": o.rule, "reason": o.reason}
            for o in p.obsolete
        ],
        "booleans": [
            {
                "name": b.name,
                "current": b.current,
                "when_on": [_change_json(c) for c in b.when_on],
                "when_off": [_change_json(c) for c in b.when_off],
            }
            for b in p.booleans
        ],
        "notes": notes_text(p.notes),
        **extra,
    }


def rule_statement(rule: AVRule, perm: str | None = None) -> str:
    """The rule as a .te statement that can be pasted: every permission, or only ``perm``
    (the condition, if any, is for the caller to word outside the statement)."""
    perms = [perm] if perm is not None else sorted(rule.perms)
    ptext = perms[0] if len(perms) == 1 else "{ " + " ".join(perms) + " }"
    return f"{rule.ruletype} {rule.source} {rule.target}:{rule.tclass} {ptext};"


def _user_json(u: PortUser) -> dict[str, object]:
    return {"domain": u.domain, "socket_type": u.socket_type, **access_json(u.access),
            "rule": rule_statement(u.rule) if u.rule is not None else None,
            "via": u.via, "via_target": u.via_target}


def _groups_json(users: tuple[PortUser, ...], perm: str) -> list[dict[str, object]]:
    return [
        {"rule": rule_statement(g.rule, perm) if g.rule is not None else None,
         "via": list(g.via), "via_target": g.via_target, **access_json(g.access),
         "domains": [u.domain for u in g.users]}
        for g in rule_groups(users)
    ]


def port_json(r: PortReport) -> dict[str, object]:
    return {
        "query": r.query,
        "protocol": r.protocol,
        "type": r.type,
        "context": r.context,
        "attributes": list(r.attributes),
        "label": label_json(r.label) if r.label is not None else None,
        "ports": {p: ranges_text(rs) for p, rs in r.ranges.items()},
        "inside_ip_local_port_range": r.ephemeral,
        "name_bind": {p: [_user_json(u) for u in us] for p, us in r.bind.items()},
        "name_connect": {p: [_user_json(u) for u in us] for p, us in r.connect.items()},
        "name_bind_by_rule": {p: _groups_json(us, "name_bind") for p, us in r.bind.items()},
        "name_connect_by_rule": {p: _groups_json(us, "name_connect")
                                 for p, us in r.connect.items()},
        "notes": notes_text(r.notes),
    }


# -- text ------------------------------------------------------------------------------------------
def _how(a: Access) -> str:
    if a.allowed:
        return "" if not a.condition else f"  [if {a.condition}: on now]"
    if a.constraint:
        return f"  [DENIED by constraint: {a.constraint.strip()}]"
    fixes = " or ".join(
        ", ".join(f"{n}={'on' if v else 'off'}" for n, v in f.items()) for f in a.fixes
    )
    return f"  [if {a.condition}: off now; needs {fixes}]"


def _grouped(grants: Iterable[PortGrant]) -> list[str]:
    return [f"      {ranges_text(g.ranges)} ({g.type}){_how(g.access)}" for g in grants]


def _perm_line(perms: Mapping[str, Access]) -> str:
    parts = []
    for p, a in perms.items():
        mark = "yes" if a.allowed else ("if " + a.condition if a.condition else "no")
        parts.append(f"{p}={mark}")
    return " ".join(parts)


def _server_lines(s: ServerSide) -> list[str]:
    out = [
        f"  {s.protocol} ({s.sclass}, socket {s.socket})",
        f"    socket: {_perm_line(s.socket_perms)}",
    ]
    if s.name_bind:
        out.append("    name_bind:")
        out.extend(_grouped(s.name_bind))
    else:
        out.append("    name_bind: none")
    out.append(
        f"    no name_bind needed: {s.no_name_bind[0]}-{s.no_name_bind[1]} (ip_local_port_range)"
    )
    if s.node_bind:
        out.append("    node_bind:")
        out.extend(f"      {g.type}: {', '.join(g.addresses)}{_how(g.access)}" for g in s.node_bind)
    else:
        out.append("    node_bind: none (bind() fails for every address, even port 0)")
    out.append(f"    bind() to 0.0.0.0 succeeds on: {ranges_text(s.bindable) or 'no port'}")
    return out


def _client_lines(c: ClientSide) -> list[str]:
    out = [
        f"  {c.protocol} ({c.sclass}, socket {c.socket})",
        f"    socket: {_perm_line(c.socket_perms)}",
    ]
    if not c.port_checked:
        out.append(f"    {c.sclass} has no name_connect: destination ports are not checked")
    elif c.name_connect:
        out.append("    name_connect:")
        out.extend(_grouped(c.name_connect))
    else:
        out.append("    name_connect: none")
    return out


def _change_text(c: BooleanChange) -> str:
    t = f" {c.type}" if c.type else ""
    ports = f" ({ranges_text(c.ranges)})" if c.ranges else ""
    return f"{c.what}{t}{ports}"


def profile_lines(p: DomainProfile) -> list[str]:
    cap = p.capabilities["net_bind_service"]
    lines = [f"domain {p.domain}", "", "server:"]
    lines.append(
        f"  bind below {p.env.unprivileged_port_start} (capability net_bind_service): "
        f"{'yes' if cap.allowed else 'no'}{_how(cap) if cap.condition else ''}"
    )
    for s in p.server:
        lines.extend(_server_lines(s))
    lines += ["", "client:"]
    for c in p.client:
        lines.extend(_client_lines(c))
    lines.append(f"  not port-restricted by SELinux: {', '.join(p.unrestricted_clients)}")
    for cls, perms in p.other_sockets.items():
        lines.append(f"  {cls}: {_perm_line(perms)}")
    raw = p.capabilities["net_raw"]
    lines.append(f"  capability net_raw (raw sockets): {'yes' if raw.allowed else 'no'}")
    lines += [
        "",
        "labeled networking (checked only with NetLabel/IPsec/SECMARK/always_check_network):",
    ]
    if not p.labeled:
        lines.append("  none")
    for g in p.labeled:
        cond = f" [if {g.condition}]" if g.condition else ""
        targets = ", ".join(g.targets[:6]) + (
            f" and {len(g.targets) - 6} more (--json lists them)" if len(g.targets) > 6 else ""
        )
        meaning = LABELED_MEANING.get((g.tclass, g.perm), "")
        lines.append(f"  {g.tclass} {g.perm} ({g.subject} -> {targets}){cond}: {meaning}")
    if p.obsolete:
        lines += ["", "obsolete permissions granted (never checked by a current kernel):"]
        seen = set()
        for o in p.obsolete:
            if (o.tclass, o.perm) not in seen:
                seen.add((o.tclass, o.perm))
                lines.append(f"  {o.tclass} {o.perm}: {o.reason}")
    lines += ["", "booleans that change this profile:"]
    if not p.booleans:
        lines.append("  none")
    for b in p.booleans:
        lines.append(f"  {b.name} ({'on' if b.current else 'off'} now)")
        lines.extend(f"    on adds: {_change_text(c)}" for c in b.when_on)
        lines.extend(f"    off adds: {_change_text(c)}" for c in b.when_off)
    lines += ["", "notes:"] + [f"  {n}" for n in notes_text(p.notes)]
    return lines


def _via(via: Iterable[str], via_target: str | None) -> str:
    parts = [f"via attribute {', '.join(via)}"] if via else []
    if via_target:
        parts.append(f"port type via attribute {via_target}")
    return f" ({'; '.join(parts)})" if parts else ""


def _user_lines(users: Iterable[PortUser]) -> list[str]:
    """--full: every domain with its deciding rule, whole."""
    out = []
    for u in users:
        sock = f" (socket {u.socket_type})" if u.socket_type != u.domain else ""
        rule = rule_statement(u.rule) if u.rule is not None else "handle_unknown=allow"
        out.append(f"    {u.domain}{sock}  {rule}{_via([u.via] if u.via else [], u.via_target)}"
                   f"{_how(u.access)}")
    return out or ["    nobody"]


MAX_RULES = 8  # rule groups shown per protocol and permission; --full lists every domain
MAX_NAMES = 4  # domains named per rule group


def _group_line(g: RuleGroup, perm: str) -> str:
    rule = rule_statement(g.rule, perm) if g.rule is not None else "handle_unknown=allow"
    names = [u.domain for u in g.users]
    if len(names) == 1:
        who = names[0]
        tail = ""
    else:
        who = f"{len(names)} domains"
        shown = ", ".join(names[:MAX_NAMES])
        tail = f": {shown} and {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES \
            else f": {shown}"
    return f"    {who}  {rule}{_via(g.via, g.via_target)}{_how(g.access)}{tail}"


def _rule_lines(users: tuple[PortUser, ...], perm: str) -> list[str]:
    groups = rule_groups(users)
    out = [_group_line(g, perm) for g in groups[:MAX_RULES]]
    rest = groups[MAX_RULES:]
    if rest:
        n = sum(len(g.users) for g in rest)
        out.append(f"    and {len(rest)} more rules for {n} domains (--full lists them)")
    return out or ["    nobody"]


def port_lines(r: PortReport, full: bool = False) -> list[str]:
    """Who may bind or reach the port, grouped by the rule that lets them (each rule as a
    .te statement narrowed to the permission); ``full``: every domain and its whole rule."""
    lines = [f"{r.query}: {r.type} ({r.context})"]
    if r.label is not None:
        how = (
            r.label.matched.describe() if r.label.matched else "no portcon: the 'port' initial SID"
        )
        lines.append(f"  resolved by: {how}")
        lines.extend(f"  loses: {s.record.describe()}" for s in r.label.shadowed)
    lines.append(f"  attributes: {', '.join(r.attributes) or 'none'}")
    for proto, rs in r.ranges.items():
        lines.append(
            f"  {proto} ports with this {'label' if r.protocol else 'type'}: {ranges_text(rs)}"
        )
    for perm, table in (("name_bind", r.bind), ("name_connect", r.connect)):
        for proto, users in table.items():
            n = len(rule_groups(users))
            count = f": {len(users)} domains through {n} rules" if len(users) > 1 else ""
            lines.append(f"  may {perm} ({proto}){count}:")
            lines.extend(_user_lines(users) if full else _rule_lines(users, perm))
    if not full and (any(r.bind.values()) or any(r.connect.values())):
        lines.append("  (rules narrowed to the permission; --full: every domain, each rule whole)")
    lines.extend(f"  note: {n}" for n in notes_text(r.notes))
    return lines


# -- the summary (the default text of `selnet domain`; --full is profile_lines) ---------------
BRIEF_RANGES = 60  # characters of port ranges shown before they are summarised


def _brief_ranges(ranges: tuple[Range, ...], limit: int = BRIEF_RANGES) -> str:
    text = ranges_text(ranges)
    if len(text) <= limit:
        return text
    return f"{len(ranges)} ranges within {ranges[0][0]}-{ranges[-1][1]}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def group_text(g: PortGroup) -> str:
    """``every port type (through port_type)``, ``unreserved_port_type (154 port types:
    60 ranges within 1024-65535)``, ``http_port_t (80, 443)``."""
    if g.attribute is None:
        return f"{g.types[0]} ({_brief_ranges(g.ranges)})"
    if g.every:
        return f"every port type (through {g.attribute})"
    return f"{g.attribute} ({_plural(len(g.types), 'port type')}: {_brief_ranges(g.ranges)})"


MAX_GROUPS = 6  # groups named on one line; the rest are counted (all under --full)


def groups_text(groups: tuple[PortGroup, ...]) -> str:
    # cut only when it saves a line's worth: "and 1 more port type" would hide a name
    cut = MAX_GROUPS if len(groups) > MAX_GROUPS + 1 else len(groups)
    shown = [group_text(g) for g in groups[:cut]]
    rest = groups[cut:]
    if rest:
        n = sum(len(g.types) for g in rest)
        shown.append(f"and {_plural(n, 'more port type')}")
    return ", ".join(shown) if shown else "no port type"


def _side_head(s: SideSummary, steps: str, domain: str) -> str:
    # a socket type_transition makes the socket, not the domain, the port checks' subject
    label = f" (labeled {s.socket})" if s.socket and s.socket != domain else ""
    if not s.socket_denied:
        return f"{s.protocol}: socket{label} {steps}: yes"
    return f"{s.protocol}: socket{label} {steps}: denied {' '.join(s.socket_denied)}"


def _later(s: SideSummary) -> str:
    parts = []
    if s.later:
        parts.append(f"{_plural(s.later, 'more port type')} under booleans (below)")
    if s.blocked:
        parts.append(f"{s.blocked} denied by a constraint")
    return f"; {'; '.join(parts)}" if parts else ""


def _dead(sides: tuple[SideSummary, ...]) -> list[SideSummary]:
    """Sides whose socket cannot even be created now and that nothing opens."""
    return [s for s in sides if "create" in s.socket_denied and not s.now and not s.later]


def _server_summary(s: SideSummary, domain: str) -> list[str]:
    nodes = ", ".join(s.nodes_now) or "no node type (bind() fails on every address)"
    if s.nodes_later:
        nodes += f"; under booleans: {', '.join(s.nodes_later)}"
    return [
        f"  {_side_head(s, 'create bind listen accept' if s.protocol != 'udp' else 'create bind', domain)}"
        f"; node_bind: {nodes}",
        f"    name_bind now: {groups_text(s.now)}{_later(s)}",
        f"    bind() to 0.0.0.0 succeeds now on: "
        f"{_brief_ranges(s.ports, 2 * BRIEF_RANGES) if s.ports else 'no port'}",
    ]


def _client_summary(s: SideSummary, domain: str) -> list[str]:
    out = [f"  {_side_head(s, 'create connect write read', domain)}"]
    if not s.port_checked:
        out[0] += f"; {s.sclass} has no name_connect: destination ports are not checked"
        return out
    out.append(f"    name_connect now: {groups_text(s.now)}{_later(s)}")
    out.append("    connect() succeeds now to: "
               f"{_brief_ranges(s.ports, 2 * BRIEF_RANGES) if s.ports else 'no port'}")
    return out


def _change_summary(c: ChangeSummary) -> str:
    if c.groups:
        return f"{c.what} {groups_text(c.groups)}"
    if c.types:
        return f"{c.what} {', '.join(c.types)}"
    return c.what


def _boolean_summary(b: BooleanSummary) -> str:
    parts = []
    for value, changes in (("on", b.when_on), ("off", b.when_off)):
        if changes:
            parts.append(f"{value} allows {'; '.join(_change_summary(c) for c in changes)}")
    return f"  {b.name} ({'on' if b.current else 'off'} now): {'; '.join(parts)}"


def _perms_brief(perms: Mapping[str, Access]) -> str:
    if all(a.allowed for a in perms.values()):
        return "yes"
    if not any(a.allowed or a.condition for a in perms.values()):
        return "no"
    return _perm_line(perms)


def summary_lines(s: DomainSummary) -> list[str]:
    """`selnet domain` on one screen: what is allowed now, grouped by the policy's
    attributes, and one line per boolean that changes it.  --full: profile_lines."""
    p = s.profile
    cap = p.capabilities["net_bind_service"]
    lines = [f"domain {p.domain} (summary; --full lists every port, node and rule)", "server:"]
    lines.append(
        f"  bind below {p.env.unprivileged_port_start} (capability net_bind_service): "
        f"{'yes' if cap.allowed else 'no'}{_how(cap) if cap.condition else ''}"
        f"; no name_bind is checked on {p.env.local_port_range[0]}-{p.env.local_port_range[1]}"
        " (ip_local_port_range)")
    dead = _dead(s.server)
    for side in s.server:
        if side not in dead:
            lines.extend(_server_summary(side, p.domain))
    if dead:
        lines.append(f"  {', '.join(d.protocol for d in dead)}: socket create denied")
    lines.append("client:")
    dead = _dead(s.client)
    for side in s.client:
        if side not in dead:
            lines.extend(_client_summary(side, p.domain))
    if dead:
        lines.append(f"  {', '.join(d.protocol for d in dead)}: socket create denied")
    other = "; ".join(f"{cls} {_perms_brief(perms)}" for cls, perms in p.other_sockets.items())
    raw = p.capabilities["net_raw"]
    lines.append(f"  not port-restricted by SELinux: {', '.join(p.unrestricted_clients)} "
                 f"({other}; capability net_raw: {'yes' if raw.allowed else 'no'})")
    if s.labeled:
        lines.append(f"labeled networking (only with NetLabel/IPsec/SECMARK): "
                     f"{_plural(s.labeled, 'grant')} on {', '.join(s.labeled_classes)}")
    if p.obsolete:
        pairs = dict.fromkeys(f"{o.tclass} {o.perm}" for o in p.obsolete)
        lines.append(f"obsolete permissions granted (no current kernel checks them): "
                     f"{', '.join(pairs)}")
    lines.append("booleans that change this profile (what each value allows that the other "
                 "does not):" if p.booleans else "booleans that change this profile: none")
    lines.extend(_boolean_summary(b) for b in s.booleans)
    lines += ["notes:"] + [f"  {n}" for n in notes_text(p.notes)]
    return lines
