"""Text and JSON for ``selnet audit``."""

from __future__ import annotations

from selnet.audit.auditor import AuditReport, Group
from selnet.audit.diagnose import Diagnosis


def _denial_json(d: Diagnosis, count: int, pids: set[str], comms: set[str]) -> dict[str, object]:
    rec = d.rec
    out: dict[str, object] = {
        "scontext": rec.scontext, "tcontext": rec.tcontext, "tclass": rec.tclass,
        "perms": list(rec.perms), "count": count, "permissive": rec.permissive,
        "source_format": rec.source_format, "line": rec.line_no,
        "fields": {k: v for k, v in rec.fields.items() if k not in ("pid", "comm")},
        "kernel_check": {"hook": d.check.hook, "operation": d.check.operation,
                         "subject": d.check.subject, "target": d.check.target},
        "situations": d.situations,
        "still_denied": d.still_denied,
        "verdicts": [
            {"perm": v.perm, "target_type": v.decided_target,
             "allowed": v.decision.allowed if v.decision else None,
             "reason": v.decision.reason if v.decision else ("obsolete" if v.obsolete else None),
             "enforced": v.decision.enforced if v.decision else None,
             "dontaudit": v.decision.silent if v.decision else None,
             "boolean_fixes": [bf.to_json() for bf in v.decision.boolean_fixes]
             if v.decision else []}
            for v in d.verdicts
        ],
        "notes": d.notes,
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
        out["constraint"] = {"statement": d.constraint_text, "detail": d.constraint_detail}
    return out


def group_json(g: Group) -> dict[str, object]:
    fix = g.fix
    return {
        "domain": g.domain, "situation": g.situation, "tclass": g.tclass, "target": g.target,
        "count": g.count, "still_denied": g.still_denied,
        "explanation": g.explanation,
        "fix": fix.to_json() if fix else None,
        "fixes": [f.to_json() for f in g.fixes],
        "denials": [_denial_json(e.diag, e.count, e.pids, e.comms) for e in g.entries],
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
        **({"broad": r.broad} if r.broad is not None else {}),
    }


def report_lines(r: AuditReport) -> list[str]:
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
        for line in g.explanation:
            out.append(f"    {line}")
        fix = g.fix
        if fix is not None:
            out.append(f"  fix ({fix.kind}, verified: {fix.verify}): {fix.title}")
            for c in fix.commands:
                out.append(f"      {c}")
            for gr in fix.grants:
                out.append(f"      opens: {gr}")
            for alt in fix.alternatives:
                out.append(f"      alternative: {alt}")
        elif g.still_denied:
            out.append("  no verified fix (see the explanation)")
        rest = [f for f in g.fixes if f is not fix]
        for f in rest:
            mark = "verified" if f.verified else "NOT verified"
            out.append(f"  other fix ({f.kind}, {mark}): {f.title}")
            for c in f.commands:
                out.append(f"      {c}")
            for gr in f.grants[:3]:
                out.append(f"      opens: {gr}")
    if r.broad is not None:
        out.append("")
        out.append("broad switches (blast radius only, never a fix):")
        perm = r.broad.get("permissive_domain", {})
        assert isinstance(perm, dict)
        for _dom, info in perm.items():
            out.append(f"  {info['command']}: silences {info['silences_denials_in_log']} "
                       f"denial(s) in this log; {info['gains']}")
        dis = r.broad.get("disable_selinux", {})
        assert isinstance(dis, dict)
        out.append(f"  {dis.get('command')}: silences {dis.get('silences_denials_in_log')} "
                   f"denial(s) in this log; {dis.get('gains')}")
    return out
