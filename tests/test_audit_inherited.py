"""selnet audit: denials on a socket another domain created (systemd socket activation, an
inetd child, a socket passed or inherited), recognised by the creator's label, explained,
and fixed on the creator's socket type; fd use on the creator joins the group.

The AVC lines are written for these tests in the shape of real reports (a service's
accept() on a socket systemd passed, with its SYSCALL record; syscall 43 is accept on
x86_64)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from selnet.audit.auditor import AuditReport, Group, run_audit
from selnet.cli import main
from selnet.decide.decision import Decider
from selnet.fix.interfaces import InterfaceIndex
from selnet.model.env import NetEnv
from selnet.model.trace import TraceModel
from selnet.policy.index import Policy
from selnet.policy.loader import load_policy
from selnet.render.audit import explanation, report_json

ROOT = Path(__file__).resolve().parents[1]
HTTPD = "system_u:system_r:httpd_t:s0"
INIT = "system_u:system_r:init_t:s0"
INETD = "system_u:system_r:inetd_t:s0"

# one denial, three log formats
RAW = ('type=AVC msg=audit(1764670400.310:7702): avc:  denied  { accept } for  pid=4121 '
       f'comm="httpd" lport=80 scontext={HTTPD} tcontext={INIT} tclass=tcp_socket permissive=0\n'
       'type=SYSCALL msg=audit(1764670400.310:7702): arch=c000003e syscall=43 success=no '
       'exit=-13 a0=3 a1=0 a2=0 a3=0 items=0 ppid=1 pid=4121 auid=4294967295 uid=0 gid=0 '
       'euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="httpd" '
       f'exe="/usr/sbin/httpd" subj={HTTPD} key=(null)')
AUSEARCH = ('----\n'
            'type=SYSCALL msg=audit(12/02/2026 10:13:20.310:7702) : arch=x86_64 syscall=accept '
            'success=no exit=EACCES(Permission denied) a0=0x3 a1=0x0 a2=0x0 a3=0x0 items=0 '
            'ppid=1 pid=4121 auid=unset uid=root gid=root euid=root suid=root fsuid=root '
            'egid=root sgid=root fsgid=root tty=(none) ses=unset comm=httpd exe=/usr/sbin/httpd '
            f'subj={HTTPD} key=(null)\n'
            'type=AVC msg=audit(12/02/2026 10:13:20.310:7702) : avc:  denied  { accept } for  '
            f'pid=4121 comm=httpd lport=80 scontext={HTTPD} tcontext={INIT} tclass=tcp_socket '
            'permissive=0')
JOURNALD = ('Dec 02 10:13:20 web1 audit[4121]: AVC avc:  denied  { accept } for  pid=4121 '
            f'comm="httpd" lport=80 scontext={HTTPD} tcontext={INIT} tclass=tcp_socket '
            'permissive=0')
FD_USE = ('type=AVC msg=audit(1764670400.300:7701): avc:  denied  { use } for  pid=4121 '
          'comm="httpd" path="socket:[52114]" dev="sockfs" ino=52114 '
          f'scontext={HTTPD} tcontext={INIT} tclass=fd permissive=0')


def _audit(policy: Policy, text: str, **kw: Any) -> AuditReport:
    kw.setdefault("use_interfaces", False)
    return run_audit(policy, [text.splitlines()], **kw)


def _inherited(rep: AuditReport) -> Group:
    got = [g for g in rep.groups if g.situation == "socket-owned-by-other-domain"]
    assert len(got) == 1, [(g.domain, g.situation) for g in rep.groups]
    return got[0]


def _fix_allows(policy: Policy, g: Group, scon: str, tcon: str, perms: tuple[str, ...]) -> None:
    """The group's best fix, applied to the policy in memory, allows every permission; the
    policy without it denies at least one (so the fix is what makes the difference)."""
    assert g.fix is not None and g.fix.verified
    before = Decider(policy, policy.bool_values())
    fixed = policy.with_changes(*g.fix.changes)
    after = Decider(fixed, fixed.bool_values())
    s, t = policy.context_for_domain(scon), policy.context_for_domain(tcon)
    assert any(not before.decide(s, t, g.tclass, p).allowed for p in perms)
    assert all(after.decide(s, t, g.tclass, p).allowed for p in perms), g.fix.commands


def _served_perms(policy: Policy, domain: str, creator: str, steps: list[str]) -> set[str]:
    """What ``selnet trace DOMAIN STEPS --socket-from CREATOR`` checks on the socket after
    the handoff: the model's own answer, asked independently of audit."""
    dom, cre = policy.context_for_domain(domain), policy.context_for_domain(creator)
    plan = TraceModel(policy, policy.bool_values()).plan(dom, steps, NetEnv(), cre)
    return {c.perm for ts in plan.steps if ts.subject == dom for c in ts.checks
            if c.spec.target == "socket"}


@pytest.fixture(scope="module")
def refpolicy(refpolicy_standard: Path) -> Policy:
    return load_policy([str(refpolicy_standard)])


# Interfaces in refpolicy's shape, written for these tests: the whole installed tree takes
# seconds to index in a fresh cache.
_IF = {
    "support/obj_perm_sets.spt":
        "define(`rw_socket_perms', `{ ioctl read getattr write setattr append bind connect "
        "getopt setopt shutdown }')\n"
        "define(`rw_stream_socket_perms', `{ rw_socket_perms listen accept }')\n",
    "services/inetd.if":
        "interface(`inetd_rw_tcp_sockets',`\n\tgen_require(`\n\t\ttype inetd_t;\n\t')\n"
        "\tallow $1 inetd_t:tcp_socket rw_stream_socket_perms;\n')\n",
    "system/init.if":
        "interface(`init_use_fds',`\n\tgen_require(`\n\t\ttype init_t;\n\t')\n"
        "\tallow $1 init_t:fd use;\n')\n",
}


@pytest.fixture(scope="module")
def ifx(tmp_path_factory: pytest.TempPathFactory) -> InterfaceIndex:
    root = tmp_path_factory.mktemp("include")
    for rel, text in _IF.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    got = InterfaceIndex.load(root, cache_dir=root / "cache")
    assert got is not None
    return got


@pytest.mark.refpolicy
@pytest.mark.parametrize("text", [RAW, AUSEARCH, JOURNALD], ids=["raw", "ausearch", "journald"])
def test_socket_activation_every_format(refpolicy: Policy, text: str) -> None:
    rep = _audit(refpolicy, text)
    g = _inherited(rep)
    assert (g.domain, g.tclass, g.target) == ("httpd_t", "tcp_socket", "init_t")
    o = g.origin
    assert o is not None and (o.creator, o.kind, o.listener) == ("init_t", "socket-activation",
                                                                 True)
    assert rep.exit_denied
    # the fix is on init_t's socket, never a port or a socket httpd_t creates itself
    assert all(f.kind in ("rule", "interface") for f in g.fixes if f.verified)
    assert g.fix is not None and g.fix.commands[0].startswith("allow httpd_t init_t:tcp_socket")
    assert not any("create" in c or "port_t" in c for f in g.fixes for c in f.commands)
    # it covers serving on the socket as the trace model says: accept, then read and write
    served = _served_perms(refpolicy, "httpd_t", "init_t",
                           ["sock=tcp", "bind=127.0.0.1:80", "listen", "handoff", "accept",
                            "recv", "send"])
    assert {"accept", "read", "write"} <= served <= set(o.perms)
    _fix_allows(refpolicy, g, "httpd_t", "init_t", o.perms)
    text_lines = explanation(g)
    assert any(line.startswith("socket activation: init_t (PID 1)") for line in text_lines)
    assert all(len(line) < 240 for line in text_lines)


@pytest.mark.refpolicy
def test_inetd_child_interface(refpolicy: Policy, ifx: InterfaceIndex) -> None:
    line = ('type=AVC msg=audit(1764670500.010:8100): avc:  denied  { read } for  pid=5002 '
            f'comm="in.httpd" scontext={HTTPD} tcontext={INETD} tclass=tcp_socket permissive=0')
    rep = _audit(refpolicy, line, interfaces=ifx)
    g = _inherited(rep)
    o = g.origin
    assert o is not None and (o.creator, o.kind, o.listener) == ("inetd_t", "inetd", False)
    # inetd accepted the connection: the child reads and writes it, it does not accept
    assert "accept" not in o.perms and {"read", "write"} <= set(o.perms)
    calls = [f.commands for f in g.fixes if f.kind == "interface" and f.verified]
    assert ("inetd_rw_tcp_sockets(httpd_t)",) in calls
    _fix_allows(refpolicy, g, "httpd_t", "inetd_t", o.perms)


@pytest.mark.refpolicy
def test_fd_use_joins_the_socket_group(refpolicy: Policy, ifx: InterfaceIndex) -> None:
    other_fd = FD_USE.replace(INIT, "system_u:system_r:sshd_t:s0").replace(":7701)", ":7703)")
    rep = _audit(refpolicy, "\n".join([FD_USE, RAW, other_fd]), interfaces=ifx)
    g = _inherited(rep)
    assert [e.diag.tclass for e in g.entries] == ["tcp_socket", "fd"]
    fd = g.entries[1].diag
    assert fd.still_denied and [c.id for c in fd.checks] == ["recvfd.fd_use", "exec.fd_use"]
    # the fd use on sshd_t has no socket denial of that creator: it stays a non-network AVC
    assert (rep.network_records, rep.non_network_records) == (2, 1)
    assert len(rep.groups) == 1
    assert any(line.startswith("also logged: fd use on init_t (1 record): still denied")
               for line in explanation(g))
    # every verified fix, applied in memory, allows fd use as well as the socket checks
    assert g.fix is not None
    for f in (f for f in g.fixes if f.verified):
        _fix_allows(refpolicy, g, "httpd_t", "init_t", ("accept",))
        after = refpolicy.with_changes(*f.changes)
        s, t = (refpolicy.context_for_domain(x) for x in ("httpd_t", "init_t"))
        assert Decider(after, after.bool_values()).decide(s, t, "fd", "use").allowed, f.commands
    out = report_json(rep)["groups"][0]  # type: ignore[index]
    assert out["socket_origin"]["fd_use"] == {"decided": True, "allowed_now": False, "count": 1}


@pytest.mark.refpolicy
def test_cli_json_socket_origin(refpolicy_standard: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    log = tmp_path / "audit.log"
    log.write_text(FD_USE + "\n" + RAW + "\n")
    rc = main(["audit", "--json", "--no-interfaces", "--policy", str(refpolicy_standard),
               str(log)])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1
    schema = json.loads((ROOT / "docs" / "schemas" / "audit.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(out)
    [g] = out["groups"]
    origin = g["socket_origin"]
    assert {k: origin[k] for k in ("creator", "kind", "listener")} == {
        "creator": "init_t", "kind": "socket-activation", "listener": True}
    assert origin["fd_use"] == {"decided": True, "allowed_now": False, "count": 1}
    assert g["fix"]["verified"] and "accept" in origin["needs"]
    assert "allow httpd_t init_t:fd use;" in g["fix"]["commands"]


@pytest.mark.refpolicy
def test_module_writes_the_fd_use(refpolicy_standard: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    log = tmp_path / "audit.log"
    log.write_text(FD_USE + "\n" + RAW + "\n")
    rc = main(["audit", "--json", "--no-interfaces", "--policy", str(refpolicy_standard),
               str(log), "--module", "sockfix", "-o", str(tmp_path)])
    out = json.loads(capsys.readouterr().out)
    schema = json.loads((ROOT / "docs" / "schemas" / "audit.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(out)
    assert rc == 0 and out["verified"]
    # fd use is decided: the module grants it, and reading the module back allows it
    assert {"scontext": "system_u:system_r:httpd_t", "tcontext": "system_u:system_r:init_t",
            "class": "fd", "perm": "use", "port": None, "allowed": True} in out["records"]
    te = (tmp_path / "sockfix.te").read_text()
    assert "allow httpd_t init_t:tcp_socket {" in te and "allow httpd_t init_t:fd use;" in te


# -- a small CIL policy: a passed socket, and a type_transition label that is not one -------
CIL = """
(type app_t) (roletype system_r app_t)
(type broker_t) (roletype system_r broker_t)
(type svc_t) (roletype system_r svc_t)
; a socket type some process role also admits: a domain by roles, but a socket's own label
(type svc_sock_t) (roletype system_r svc_sock_t)
(typeattributeset domain (app_t broker_t svc_t svc_sock_t))
(typetransition svc_t svc_t tcp_socket svc_sock_t)
(allow broker_t self (tcp_socket (create bind listen accept read write)))
(allow app_t self (tcp_socket (create bind listen accept read write getattr)))
(allow app_t broker_t (tcp_socket (getattr)))
"""


@pytest.fixture(scope="module")
def small(compile_cil: Any) -> Policy:
    return load_policy([str(compile_cil(CIL))])


def _line(perm: str, scon: str, tcon: str, serial: int, tclass: str = "tcp_socket") -> str:
    return (f"type=AVC msg=audit(1764670600.{serial % 1000:03d}:{serial}): avc:  denied  "
            f"{{ {perm} }} for  pid=77 comm=\"app\" scontext=system_u:system_r:{scon} "
            f"tcontext=system_u:system_r:{tcon} tclass={tclass} permissive=0")


def test_passed_socket(small: Policy) -> None:
    rep = _audit(small, "\n".join([_line("read", "app_t", "broker_t", 1),
                                   _line("use", "app_t", "broker_t", 2, "fd")]))
    g = _inherited(rep)
    o = g.origin
    assert o is not None and (o.creator, o.kind, o.listener) == ("broker_t", "passed", False)
    assert len(g.entries) == 2 and g.entries[1].diag.fd_of_socket
    # getattr is allowed already: the fix grants only what is still denied
    assert g.fix is not None and g.fix.commands[0].startswith("allow app_t broker_t:tcp_socket")
    assert "getattr" not in g.fix.commands[0] and "read" in g.fix.commands[0]
    _fix_allows(small, g, "app_t", "broker_t", o.perms)
    assert any(line.startswith("a socket inherited or passed from broker_t")
               for line in explanation(g))


def test_type_transition_label_is_not_inherited(small: Policy) -> None:
    rep = _audit(small, _line("accept", "svc_t", "svc_sock_t", 3))
    [g] = rep.groups
    assert g.situation == "missing-rule" and g.origin is None
    assert "socket-owned-by-other-domain" not in g.entries[0].diag.situations
    assert g.fix is not None and g.fix.commands[0] == "allow svc_t svc_sock_t:tcp_socket accept;"
    # a port check is never a socket origin either, even when the target is a domain
    rep = _audit(small, _line("accept", "app_t", "app_t", 4))
    assert rep.groups[0].origin is None
