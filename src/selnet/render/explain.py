"""`selnet explain DOMAIN`: one page (two screens), `--full` for the rest, and JSON."""

from __future__ import annotations

from selnet.analyses.profiles import ranges_text
from selnet.explain.domain import DomainExplanation, Judged
from selnet.kernel.checks import KERNEL_VERSION
from selnet.render.chain import chain_json

_SUBJECT = {"task": "the process", "socket": "the socket's label", "peer": "the PEER label"}


def _judged_text(j: Judged) -> str:
    if j.obsolete is not None or not j.checks:
        why = j.obsolete or "no current kernel check uses it"
        if "removed in 2.6.30" in why:
            today = why.split("replaced by ", 1)[-1]
            why = f"compat_net, removed in 2.6.30; today: {today}"
        verdict = f"NEVER checked ({why})"
    else:
        steps = ", ".join(dict.fromkeys(c.step for c in j.checks))
        hooks = ", ".join(dict.fromkeys(c.hook for c in j.checks))
        subj = ", ".join(dict.fromkeys(_SUBJECT.get(c.subject, c.subject) for c in j.checks))
        cond = "; only with labeled networking/SECMARK" if j.conditional else ""
        verdict = f"checked on {steps} ({hooks}), subject {subj}{cond}"
    policy = ("declared" if j.declared else "not declared") + (
        ", granted to the domain" if j.granted else "")
    return f"    {j.perm:<12} {verdict} [{policy}]"


def explain_lines(e: DomainExplanation, full: bool = False) -> list[str]:
    out = [f"{e.domain}: its network access, layer by layer (kernel {KERNEL_VERSION} model)"]
    for layer in ("socket", "netif", "node", "port"):
        rows = [j for j in e.layers if j.layer == layer]
        cls = rows[0].tclass if rows else ""
        out.append(f"  {layer} ({cls}):")
        out += [_judged_text(j) for j in rows]
    out.append("  per-packet checks (netif, node, peer, packet) run only with labeled networking "
               "(NetLabel/IPsec), SECMARK or always_check_network; netif ingress and node "
               "recvfrom have the PEER label as subject, not this domain")
    out.append("")
    out.append("as a server:")
    for ch in e.server_chains:
        out.append("  " + _chain_summary(ch))
    if not e.server_chains:
        out.append("  (it may bind no port of its own)")
    out.append("as a client:")
    for ch in e.client_chains:
        out.append("  " + _chain_summary(ch))
    if not e.client_chains:
        out.append("  (it may reach no tcp port unconditionally)")
    s = e.serving
    out.append("")
    bind = "; ".join(f"{p} {ranges_text(rs[:6])}{' ...' if len(rs) > 6 else ''}"
                     for p, rs in s.bind.items()) or "none"
    reach = ranges_text(s.connect[:6]) + (" ..." if len(s.connect) > 6 else "") or "none"
    answer = "yes" if s.can_serve_without_connecting else "no (it may bind no port)"
    out.append(f"can it serve without connecting out? {answer}: name_bind and name_connect are "
               "separate permissions on the port type")
    out.append(f"  may bind now: {bind}")
    out.append(f"  may reach now (tcp): {reach or 'none'}")
    if s.joining:
        out.append(f"  booleans that would let it connect out more: {', '.join(s.joining[:8])}")
    out.append("")
    out.append("minimal policy for its own ports:")
    out += [f"  {i}" for i in e.interfaces] or ["  (no refpolicy interface found)"]
    out += [f"  {c}" for c in (e.cil if full else e.cil[:4])]
    out.append("")
    out.append("what the usual macros grant, and what the kernel checks:")
    for macro, perms in e.macros.items():
        if not full and macro not in ("create_stream_socket_perms",):
            continue
        out.append(f"  {macro}:")
        for mp in perms:
            if mp.checks:
                where = ", ".join(dict.fromkeys(f"{c.step}() ({c.hook})" for c in mp.checks))
                out.append(f"    {mp.perm:<9} {where}")
            else:
                out.append(f"    {mp.perm:<9} {mp.file_side or 'never checked on a socket'}")
    if not full:
        out.append("(--full: every macro, every CIL rule)")
    return out


def _chain_summary(ch: object) -> str:
    from selnet.decide.chain import ChainResult

    assert isinstance(ch, ChainResult)
    sc = ch.plan.scenario
    verdict = "allowed" if ch.allowed else "DENIED"
    port = next((r for r in ch.results if r.check.perm in ("name_bind", "name_connect")), None)
    rule = ""
    if port is not None:
        active = [g for g in port.decision.grants if g.active]
        if active:
            rule = " by " + active[0].rule._replace(perms=frozenset({port.check.perm})).sesearch()
        rule = f" ({port.check.perm} on {port.check.target.type}{rule})"
    return f"{sc.operation} {sc.endpoint}: {verdict}{rule}"


def explain_json(e: DomainExplanation) -> dict[str, object]:
    return {
        "domain": e.domain,
        "kernel": KERNEL_VERSION,
        "layers": [{"layer": j.layer, "class": j.tclass, "perm": j.perm,
                    "checked": bool(j.checks) and j.obsolete is None,
                    "only_with_labeled_networking": j.conditional,
                    "steps": list(dict.fromkeys(c.step for c in j.checks)),
                    "hooks": list(dict.fromkeys(c.hook for c in j.checks)),
                    "subjects": list(dict.fromkeys(c.subject for c in j.checks)),
                    "obsolete": j.obsolete, "declared": j.declared, "granted": j.granted}
                   for j in e.layers],
        "server": [chain_json(c) for c in e.server_chains],
        "client": [chain_json(c) for c in e.client_chains],
        "serve_without_connect": {
            "answer": e.serving.can_serve_without_connecting,
            "bind": {p: [list(r) for r in rs] for p, rs in e.serving.bind.items()},
            "connect": [list(r) for r in e.serving.connect],
            "booleans_joining": list(e.serving.joining),
        },
        "minimal": {"interfaces": list(e.interfaces), "cil": list(e.cil)},
        "macros": {m: [{"perm": p.perm, "steps": [c.step for c in p.checks],
                        "hooks": [c.hook for c in p.checks], "file_side": p.file_side}
                       for p in perms] for m, perms in e.macros.items()},
    }
