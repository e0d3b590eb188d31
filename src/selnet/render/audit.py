"""Text and JSON for ``selnet audit``."""

from __future__ import annotations

import time

from selnet.audit.auditor import AuditReport, BroadSwitches, Group, PermissiveSwitch
from selnet.audit.avclog import AvcRecord
from selnet.audit.diagnose import Diagnosis
from selnet.audit.follow import FollowGroup, FollowSummary
from selnet.decide.decision import Decision
from selnet.kernel.checks import KERNEL_VERSION, KernelCheck
from selnet.kernel.classes import CLASS_PROTOCOL
from selnet.policy.snapshot import Context
from selnet.render.chain import boolean_fix_json
from selnet.render.fixes import fix_json, fix_lines
from selnet.render.notes import notes_text

_NO_TARGET = Context("", "", "?")

# What each role of a check (kernel/checks.py) is, in words.
ROLE_WORDS = {
    "task": "the calling process",
    "socket": "the socket's label",
    "port": "the port's label",
    "node": "the address's node label",
    "netif": "the interface's label",
    "peer": "the peer label (NetLabel/labeled IPsec; unlabeled without one)",
    "packet": "the packet's SECMARK label",
    "sa": "the IPsec SA or SPD label",
    "owner": "the descriptor's owner (the domain that opened it)",
}


def _operation(d: Diagnosis, ck: KernelCheck) -> str:
    """The check's operation, with the record's own addresses and ports."""
    f = d.rec.fields
    proto = CLASS_PROTOCOL.get(d.tclass, d.tclass.removesuffix("_socket"))
    if ck.id == "bind.name_bind":
        return f"bind() to local port {f.get('src', '?')}/{proto}"
    if ck.id == "bind.node_bind":
        return f"bind() to local address {f.get('saddr', '?')}"
    if ck.id == "connect.name_connect":
        addr = f" {f['daddr']}" if "daddr" in f else ""
        return f"connect() to{addr} port {f.get('dest', '?')}/{proto}"
    if ck.target in ("netif", "node") and ck.step == "rx":
        where = f" on {f['netif']}" if "netif" in f else ""
        return f"{ck.operation}: from {f.get('saddr', '?')}{where}"
    if ck.target in ("netif", "node") and ck.step == "tx":
        where = f" on {f['netif']}" if "netif" in f else ""
        return f"{ck.operation}: to {f.get('daddr', '?')}{where}"
    return ck.operation


def allowed_by(dec: Decision, perm: str) -> str:
    """The rule that allows it now, with the boolean it sits under (the allowed-now case)."""
    active = [g for g in dec.grants if g.active]
    if not active:
        return "handle_unknown=allow (the policy does not define it)"
    rule = active[0].rule
    return rule._replace(perms=frozenset({perm})).sesearch()


def constraint_detail(d: Diagnosis) -> str | None:
    """Why a constraint (or typebounds) denies it, and why no allow rule helps."""
    if d.bounded_by is not None:
        return f"{d.domain} is bounded by {d.bounded_by}, which may not do this either"
    if d.constraint_text is None or d.scon is None or d.tcon is None:
        return None
    stmt = d.constraint_text.rstrip("; ")  # setools ends statements with ';'
    if d.constraint_mls:
        return (f"MLS/MCS: subject level {d.scon.mls or '-'} vs target level {d.tcon.mls or '-'} "
                f"fails the level relation required by {stmt}; no allow rule can help (change a "
                "level, or grant an MLS-exempt attribute the constraint names)")
    return (f"constraint: {stmt} fails for user/role/type {d.scon.user}/{d.scon.role}/"
            f"{d.scon.type} -> {d.tcon.user}/{d.tcon.role}/{d.tcon.type}; an allow rule alone "
            "will not help")


def kernel_check_json(d: Diagnosis) -> dict[str, object]:
    """The check(s) behind the record: one table entry, or the few it may come from."""
    cks = d.checks
    if not cks:
        return {"hook": "avc_has_perm", "operation": f"{'/'.join(d.perms)} on {d.tclass}",
                "subject": "the source", "target": "the target", "checks": []}
    first = cks[0]
    subject = ROLE_WORDS[first.subject]
    if first.subject == "peer":
        subject = "the PEER label of the packet (not the receiving domain)"
    return {
        "hook": " or ".join(dict.fromkeys(c.hook for c in cks)),
        "operation": " or ".join(dict.fromkeys(_operation(d, c) for c in cks)),
        "subject": subject,
        "target": ROLE_WORDS[first.target],
        "checks": [{"id": c.id, "hook": c.hook, "file": c.file, "line": c.line,
                    "kernel": KERNEL_VERSION, "condition": c.condition} for c in cks],
    }


def explanation(g: Group) -> list[str]:
    """Plain words for a group: the check, the label now, the verdict and why."""
    d = g.entries[0].diag
    out: list[str] = []
    rec: AvcRecord = d.rec
    ck = kernel_check_json(d)
    out.append(f"kernel check: {ck['operation']}: {ck['hook']}() checks {'/'.join(d.perms)} on "
               f"{d.tclass}; subject = {ck['subject']}, target = {ck['target']}")
    if d.port_label is not None:
        lab = d.port_label
        how = lab.matched.describe() if lab.matched is not None else \
            f"no portcon: the '{lab.initial_sid}' initial SID"
        out.append(f"port {d.port}/{d.protocol} is labeled {lab.type} now ({how})"
                   + (f"; attributes: {', '.join(lab.attributes)}" if lab.attributes else ""))
    if len(g.entries) > 1:
        ports = sorted({e.diag.port for e in g.entries if e.diag.port is not None})
        if ports:
            out.append(f"ports in this group: {', '.join(map(str, ports[:20]))}"
                       + (" ..." if len(ports) > 20 else ""))
    sit = g.situation
    texts = {
        "generic-port-type": f"the port has a generic type ({d.tcon.type if d.tcon else '?'}): "
                             "it was never given the service's label; relabel it",
        "port-label-not-installed": "the domain's own port type exists in the policy but no "
                                    "port carries it: its port label was never installed",
        "missing-service-port-rule": "the port is labeled for a service "
                                     f"({d.tcon.type if d.tcon else '?'}) "
                                     f"but {d.domain} has no rule for that port type",
        "ephemeral-port-range": f"{d.domain} is denied on many changing ports/types: it picks "
                                "ports itself outside ip_local_port_range; fix the port range, "
                                "not one rule per accidental type",
        "boolean-off": "an allow rule exists but a boolean is off",
        "constraint": constraint_detail(d) or "a constraint denies it",
        "socket-owned-by-other-domain": "the socket was created by another domain "
                                        f"({d.target_type}): grant the rule on its label, "
                                        "not a port or a socket of its own",
        "labeled-networking": "a per-packet check of labeled networking",
        "obsolete-permission": "the permission is obsolete on current kernels",
        "foreign-policy": "the log comes from another policy",
        "dontaudit-hidden": "a dontaudit rule would hide this denial",
        "permissive": "the record was permissive=1: it would have been denied",
        "allowed-now": "the given policy allows this now",
        "label-differs": "the log and this policy label the port differently: denied as logged, "
                         "allowed under this policy's label",
        "missing-rule": f"no allow rule gives {d.domain} this access",
    }
    out.append("problem: " + texts.get(sit, sit))
    verdicts = []
    for v in d.verdicts:
        if v.obsolete is not None:
            verdicts.append(f"{v.perm}: obsolete ({v.obsolete})")
        elif v.decision is not None:
            dec = v.decision
            why = {"allowed": "allowed", "no-rule": "denied: no allow rule",
                   "boolean": "denied: the allow rule's boolean is off",
                   "constraint": "denied by a constraint", "bounds": "denied by typebounds",
                   }.get(dec.reason, f"denied ({dec.reason})")
            if dec.silent:
                why += " (dontaudit: would not be logged)"
            if not dec.enforced:
                why += f" ({d.domain} is permissive: not enforced)"
            if dec.allowed:
                why = "allowed by " + allowed_by(dec, v.perm)
            text = f"{v.perm} -> {v.decided_target} (as logged): {why}"
            if v.current is not None:
                now = ("allowed by " + allowed_by(v.current, v.perm) if v.current.allowed
                       else "denied")
                text += f"; under this policy's label ({v.current_target}): {now}"
            verdicts.append(text)
    if verdicts:
        out.append("this policy: " + "; ".join(verdicts))
    if rec.permissive:
        out.append("permissive=1 in the record: the access succeeded, but would be denied "
                   "when enforcing")
    e0 = g.entries[0]
    if e0.syscall and not rec.packet_level:
        sc = e0.syscall
        out.append(f"syscall {sc.get('syscall', '?')} exit={sc.get('exit', '?')}"
                   + (f" comm={sc['comm']}" if "comm" in sc else ""))
    if e0.sockaddr and not rec.packet_level:
        sa = e0.sockaddr
        where = [sa.get("family", "?")] + ([sa["addr"]] if "addr" in sa else []) \
            + ([f"port {sa['port']}"] if "port" in sa else [])
        out.append("socket address (SOCKADDR): " + " ".join(where))
    if e0.event_perms:
        out.append("the same event also logged: " + " ".join(e0.event_perms))
    for n in notes_text(d.notes):
        if n not in out:
            out.append(n)
    fd = [e for e in g.entries if e.diag.fd_of_socket]
    if fd:
        n_fd = sum(e.count for e in fd)
        out.append(f"also logged: fd use on {fd[0].diag.target_type} ({n_fd} record"
                   f"{'s' if n_fd != 1 else ''}): "
                   + ("still denied: the fix covers it" if fd[0].diag.still_denied
                      else "allowed now"))
    others = [s for s in d.situations if s != sit]
    if others:
        out.append("also: " + ", ".join(others))
    return out




def _denial_json(d: Diagnosis, count: int, pids: set[str], comms: set[str]) -> dict[str, object]:
    rec = d.rec
    out: dict[str, object] = {
        "scontext": rec.scontext, "tcontext": rec.tcontext, "tclass": rec.tclass,
        "perms": list(rec.perms), "count": count, "permissive": rec.permissive,
        "source_format": rec.source_format, "line": rec.line_no,
        "fields": {k: v for k, v in rec.fields.items() if k not in ("pid", "comm")},
        "kernel_check": kernel_check_json(d),
        "situations": d.situations,
        "still_denied": d.still_denied,
        "verdicts": [
            {"perm": v.perm, "target_type": v.decided_target,
             "allowed": v.decision.allowed if v.decision else None,
             "reason": v.decision.reason if v.decision else ("obsolete" if v.obsolete else None),
             "enforced": v.decision.enforced if v.decision else None,
             "dontaudit": v.decision.silent if v.decision else None,
             "boolean_fixes": [boolean_fix_json(bf) for bf in v.decision.boolean_fixes]
             if v.decision else []}
            for v in d.verdicts
        ],
        "notes": notes_text(d.notes),
    }
    if rec.packet_level:
        out["process_fields_meaningless"] = True
    else:
        out["pids"] = sorted(pids)
        out["comms"] = sorted(comms)
    if d.port is not None:
        out["port"] = {"number": d.port, "protocol": d.protocol,
                       "type_now": d.port_label.type if d.port_label else None,
                       "type_in_log": d.target_type, "relabeled_since": d.label_changed}
    if d.foreign:
        out["foreign_policy"] = d.foreign
    if d.constraint_text:
        out["constraint"] = {"statement": d.constraint_text, "detail": constraint_detail(d)}
    return out


def origin_json(g: Group) -> dict[str, object] | None:
    """Where the group's socket came from, and the fd use logged with it."""
    o = g.origin
    if o is None:
        return None
    fd = [e for e in g.entries if e.diag.fd_of_socket]
    return {
        "creator": o.creator, "kind": o.kind, "listener": o.listener, "needs": list(o.perms),
        "fd_use": None if not fd else {
            "decided": True, "allowed_now": not fd[0].diag.still_denied,
            "count": sum(e.count for e in fd)},
    }


def group_json(g: Group) -> dict[str, object]:
    fix = g.fix
    return {
        "domain": g.domain, "situation": g.situation, "tclass": g.tclass, "target": g.target,
        "count": g.count, "still_denied": g.still_denied,
        "logged": {"allowed": not g.still_denied,
                   "target": g.entries[0].diag.target_type},
        "current": {"allowed": g.allowed_now,
                    "target": (g.entries[0].diag.tcon or g.entries[0].diag.logged_tcon
                               or _NO_TARGET).type},
        "explanation": explanation(g),
        "fix": fix_json(fix) if fix else None,
        "fixes": [fix_json(f) for f in g.fixes],
        "socket_origin": origin_json(g),
        "denials": [_denial_json(e.diag, e.count, e.pids, e.comms) for e in g.entries],
    }


def _permissive_gains(p: PermissiveSwitch) -> str:
    return (f"every check of {p.domain} stops being enforced (network alone: "
            f"{p.port_pairs_gained} (port type, class/perm) pairs it may not use today)")


def broad_json(b: BroadSwitches) -> dict[str, object]:
    return {
        "note": "shown for their blast radius only; never a fix",
        "permissive_domain": {p.domain: {"command": f"semanage permissive -a {p.domain}",
                                         "silences_denials_in_log": p.silenced,
                                         "gains": _permissive_gains(p)} for p in b.permissive},
        "disable_selinux": {"command": "setenforce 0",
                            "silences_denials_in_log": b.silenced_by_setenforce,
                            "gains": "every domain, every check"},
    }


def report_json(r: AuditReport) -> dict[str, object]:
    st = r.stats
    src = r.policy.source
    return {
        "policy": {"path": str(src.binary), "origin": src.origin,
                   "inputs": [str(p) for p in src.inputs]},
        "stats": {
            "lines": st.lines, "records": st.records, "avc_records": st.avc_records,
            "events": st.events, "network_denials": r.network_records,
            "distinct_network_denials": r.distinct, "granted": r.granted_records,
            "non_network_avcs": r.non_network_records, "non_avc_records": st.non_avc_records,
            "user_avc_records": st.user_avc_records, "malformed": st.malformed,
            "malformed_samples": [{"line": n, "reason": why} for n, why in st.malformed_samples],
        },
        "groups": [group_json(g) for g in r.groups],
        "still_denied": r.exit_denied,
        **({"broad": broad_json(r.broad)} if r.broad is not None else {}),
    }


def report_lines(r: AuditReport, more: int = 0) -> list[str]:
    st = r.stats
    out = [
        f"{st.lines} lines: {r.network_records} network denials ({r.distinct} distinct), "
        f"{r.granted_records} granted, {r.non_network_records} non-network AVCs skipped, "
        f"{sum(st.non_avc_records.values())} other records, {st.malformed} malformed lines skipped",
    ]
    if not r.groups:
        out.append("no network denials")
    for n, g in enumerate(r.groups, 1):
        state = "still denied" if g.still_denied else "not denied by this policy"
        out.append("")
        out.append(f"[{n}] {g.domain}: {g.situation} -- {g.tclass} on {g.target} "
                   f"({g.count} record{'s' if g.count != 1 else ''}, {state})")
        for line in explanation(g):
            out.append(f"    {line}")
        shown = [f for f in g.fixes if f.verified][: 1 + more]
        for k, f in enumerate(shown):
            out += fix_lines(f, "  ", first=k == 0)
        if not shown and g.still_denied:
            out.append("  no verified fix (see the explanation)")
        rest = len([f for f in g.fixes if f.verified]) - len(shown)
        if rest > 0:
            out.append(f"  ({rest} more: --fixes {more + rest})")
    if r.broad is not None:
        out.append("")
        out.append("broad switches (blast radius only, never a fix):")
        for p in r.broad.permissive:
            out.append(f"  semanage permissive -a {p.domain}: silences {p.silenced} denial(s) in "
                       f"this log; {_permissive_gains(p)}")
        out.append(f"  setenforce 0: silences {r.broad.silenced_by_setenforce} denial(s) in this "
                   "log; every domain, every check")
    return out


# -- audit --follow ------------------------------------------------------------------------

def follow_group_lines(fg: FollowGroup, more: int = 0) -> list[str]:
    """A new distinct denial, as it arrives: the same explanation and fix as ``audit``."""
    g = fg.group
    when = time.strftime("%H:%M:%S", time.localtime(fg.first_seen))
    state = "still denied" if g.still_denied else "not denied by this policy"
    out = [f"[{fg.number}] {when} {g.domain}: {g.situation} -- {g.tclass} on {g.target} ({state})"]
    out += [f"    {line}" for line in explanation(g)]
    shown = [f for f in g.fixes if f.verified][: 1 + more]
    for k, f in enumerate(shown):
        out += fix_lines(f, "  ", first=k == 0)
    if not shown and g.still_denied:
        out.append("  no verified fix (see the explanation)")
    return out


def follow_update_line(fg: FollowGroup) -> str:
    g = fg.group
    d = g.entries[0].diag
    return (f"[{fg.number}] seen {fg.count} times ({g.domain} {'/'.join(d.perms)} {g.tclass} "
            f"on {g.target})")


def follow_group_json(fg: FollowGroup) -> dict[str, object]:
    return {"type": "group", "number": fg.number, "first_seen": fg.first_seen,
            **group_json(fg.group)}


def follow_summary_json(s: FollowSummary) -> dict[str, object]:
    return {
        "type": "summary", "lines": s.lines, "network_denials": s.network_denials,
        "distinct_network_denials": s.groups_seen, "evicted": s.evicted,
        "rotations": s.rotations, "malformed": s.malformed, "still_denied": s.still_denied,
        "groups": [{"number": fg.number, "count": fg.count, "domain": fg.group.domain,
                    "situation": fg.group.situation, "tclass": fg.group.tclass,
                    "target": fg.group.target, "still_denied": fg.group.still_denied,
                    "first_seen": fg.first_seen, "last_seen": fg.last_seen}
                   for fg in s.groups_kept],
    }


def follow_summary_lines(s: FollowSummary) -> list[str]:
    out = [f"followed {s.lines} lines: {s.network_denials} network denials, {s.groups_seen} "
           f"distinct ({s.evicted} evicted from memory), {s.rotations} rotations, "
           f"{s.malformed} malformed lines skipped"]
    for fg in sorted(s.groups_kept, key=lambda fg: fg.number):
        g = fg.group
        out.append(f"  [{fg.number}] {g.domain}: {g.situation} -- {g.tclass} on {g.target}: "
                   f"{fg.count} time{'s' if fg.count != 1 else ''}")
    return out
