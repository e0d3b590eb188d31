"""`selnet lint`: every sentence, the JSON shape and the SARIF log of a lint report."""

from __future__ import annotations

from selnet import __version__
from selnet.kernel import checks
from selnet.kernel.classes import OBSOLETE
from selnet.lint import RULE_IDS, Finding, LintReport

SCHEMA_VERSION = 1

SHORT = {
    "NET001": "permission no current kernel checks",
    "NET002": "per-packet rule without labeled networking or SECMARK",
    "NET003": "grant on every port",
    "NET004": "listen/accept on a datagram socket class",
    "NET005": "permission the class does not have",
    "NET006": "name_bind on a generic port type",
    "NET007": "deprecated corenet interface",
}


def _where(f: Finding) -> str:
    return f" (through {f.interface})" if f.interface else ""


def _perms(f: Finding) -> str:
    return " ".join(f.perms)


def _check_facts(ids: tuple[str, ...]) -> str:
    """Check-table entries as "id (hook, file:line)", then their conditions once each."""
    cs = [checks.check(i) for i in ids]
    where = ", ".join(f"{c.id} ({c.hook}, {c.file.rsplit('/', 1)[-1]}:{c.line})" for c in cs)
    conds = "; ".join(dict.fromkeys(c.condition for c in cs))
    return f"{where}: {conds}" if cs else ""


def _obsolete_replacement(tclass: str, perm: str) -> str:
    reason = OBSOLETE[(tclass, perm)]
    if "replaced by " in reason:
        return reason.split("replaced by ", 1)[1]
    if perm == "sendto":
        return "write on the socket (send.write); remove sendto"
    if perm == "connectto":
        return "name_connect on the port's type (connectto is live for unix sockets only)"
    if perm in ("newconn", "acceptfrom"):
        return "accept on the listening socket; remove it"
    if perm in ("flow_in", "flow_out"):
        return "packet forward_in / forward_out"
    return "remove it"


def message(f: Finding) -> str:
    if f.rule == "NET001":
        return f"{f.tclass} {_perms(f)}{_where(f)}: never checked by a current kernel"
    if f.rule == "NET002":
        return (f"per-packet rule on {f.tclass} {_perms(f)}{_where(f)}, and nothing in the "
                "linted files configures labeled networking or SECMARK")
    if f.rule == "NET003":
        what = f"{f.interface}" if f.interface else f"{f.tclass} {_perms(f)} on {f.target}"
        return f"{what} grants every port"
    if f.rule == "NET004":
        return f"{f.tclass} {_perms(f)}{_where(f)}: a datagram socket never listens or accepts"
    if f.rule == "NET005":
        whose = "the policy's" if f.origin == "policy" else "the kernel's"
        return f"{f.tclass} has no {_perms(f)} in {whose} class map{_where(f)}"
    if f.rule == "NET006":
        via = "" if f.origin in ("refpolicy", "policy") else f" (generic members in {f.origin})"
        return f"name_bind on the generic port type {f.target}{via}{_where(f)}"
    if f.rule == "NET007":
        return f"{f.interface} is deprecated"
    raise ValueError(f.rule)


def fact(f: Finding) -> str:
    if f.rule == "NET001":
        return "; ".join(dict.fromkeys(f"{p}: {OBSOLETE[(f.tclass, p)]}" for p in f.perms))
    if f.rule == "NET002":
        return "checked only with labeled networking/SECMARK: " + _check_facts(f.check_ids)
    if f.rule == "NET003":
        return ("the port's label is checked on every bind/connect (" +
                (_check_facts(f.check_ids) or "bind.name_bind, connect.name_connect") +
                "); port_type holds every port type, so every port passes")
    if f.rule == "NET004":
        return ("datagram sockets have no listen()/accept() (inet_dgram_ops: sock_no_listen, "
                "sock_no_accept, EOPNOTSUPP); the hook runs first (" + _check_facts(f.check_ids)
                + "), so a grant only turns EACCES into EOPNOTSUPP")
    if f.rule == "NET005":
        if f.origin == "policy":
            return "the given policy does not declare it for this class: the rule cannot compile"
        return "not in the kernel's class map (security/selinux/include/classmap.h): never checked"
    if f.rule == "NET006":
        where = ("a portcon range of 256 ports or more in the given policy"
                 if f.origin == "policy" else "refpolicy's catch-all port labels")
        return (f"{_check_facts(f.check_ids)}; {f.target} labels {where}, so the domain may "
                "bind any port in it")
    if f.rule == "NET007":
        if f.origin == "obsolete-only":
            return "it grants only permissions no current kernel checks"
        return (f"corenetwork.if marks it refpolicywarn(...deprecated) ({f.origin}); the "
                "per-packet permissions it granted were removed (refpolicy commit 161bda392)")
    raise ValueError(f.rule)


def replacement(f: Finding) -> str:
    if f.rule == "NET001":
        return "; ".join(dict.fromkeys(_obsolete_replacement(f.tclass, p) for p in f.perms))
    if f.rule == "NET002":
        return ("drop the rule, or configure NetLabel/labeled IPsec (peer, netif, node) or "
                "SECMARK (packet) for it to matter")
    if f.rule == "NET003":
        return ("the service's own ports: corenet_tcp_connect_<name>_port / "
                "corenet_tcp_bind_<name>_port")
    if f.rule == "NET004":
        return f"remove {_perms(f)} from {f.tclass} (create_socket_perms, not the stream set)"
    if f.rule == "NET005":
        return f"remove {_perms(f)} from {f.tclass}"
    if f.rule == "NET006":
        return ("a port type of the service's own (a portcon), then "
                "corenet_<proto>_bind_<name>_port")
    if f.rule == "NET007":
        return "remove the call"
    raise ValueError(f.rule)


def lint_lines(report: LintReport) -> list[str]:
    out = [f"{f.file}:{f.line}: {f.rule} {message(f)} ({fact(f)}; use: {replacement(f)})"
           for f in report.findings]
    counts = report.counts()
    per = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
    n = len(report.findings)
    out.append(f"{n} finding{'s' if n != 1 else ''} in {len(report.files)} "
               f"file{'s' if len(report.files) != 1 else ''}" + (f": {per}" if per else ""))
    return out


def lint_json(report: LintReport) -> dict[str, object]:
    return {
        "schema_version": SCHEMA_VERSION,
        "findings": [
            {"rule": f.rule, "file": f.file, "line": f.line, "message": message(f),
             "fact": fact(f), "replacement": replacement(f)}
            for f in report.findings
        ],
        "counts": report.counts(),
    }


def lint_sarif(report: LintReport) -> dict[str, object]:
    rules = [{"id": r, "name": SHORT[r].replace(" ", "-").replace("/", "-"),
              "shortDescription": {"text": SHORT[r]}} for r in RULE_IDS]
    return {
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{
            "tool": {"driver": {"name": "selnet", "version": __version__,
                                "rules": rules}},
            "results": [
                {"ruleId": f.rule, "ruleIndex": RULE_IDS.index(f.rule), "level": "warning",
                 "message": {"text": f"{message(f)} ({fact(f)}; use: {replacement(f)})"},
                 "locations": [{"physicalLocation": {
                     "artifactLocation": {"uri": f.file},
                     "region": {"startLine": f.line}}}]}
                for f in report.findings
            ],
        }],
    }
