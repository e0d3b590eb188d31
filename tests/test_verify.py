"""selnet verify without QEMU: the harness module, the proof that it changes no check (and
that a rule which does change one is caught), SPEC and command-line parsing, the missing-tool
error, and the comparison of recorded real-kernel boots (tests/data/verify/) with the schema."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from selnet.cli.main import main
from selnet.cli.verify import predict
from selnet.errors import InputError
from selnet.kernel.classes import NETWORK_CLASSES
from selnet.policy.index import Policy
from selnet.policy.loader import load_policy
from selnet.render.verify import verify_json, verify_lines
from selnet.verify import augment, qemu, run, spec
from selnet.verify.scenarios import Scenario
from tests.conftest import ROOT, CompileCil

DATA = ROOT / "tests" / "data" / "verify"
POLICY = """
(handleunknown deny)
(policycap network_peer_controls) (policycap extended_socket_class)
(type act_t) (type svc_t) (type cli_t)
(roletype system_r act_t) (roletype system_r svc_t) (roletype system_r cli_t)
(typeattributeset domain (act_t svc_t cli_t))
(type http_port_t) (type lo_node_t)
(typeattributeset port_type (http_port_t port_t))
(classpermission sockall)
(classpermissionset sockall (tcp_socket (create bind connect listen accept read write
                                          getattr setopt getopt shutdown)))
(allow act_t self sockall)
(allow act_t http_port_t (tcp_socket (name_bind)))
(allow act_t node_type (tcp_socket (node_bind)))
(allow act_t lo_node_t (tcp_socket (node_bind)))
(allow act_t self (capability (net_bind_service)))
(allow svc_t act_t (tcp_socket (accept read write)))
(allow cli_t self sockall)
(allow cli_t http_port_t (tcp_socket (name_connect)))
(portcon tcp 80 (system_u object_r http_port_t low_low))
(nodecon (127.0.0.1) (255.255.255.255) (system_u object_r lo_node_t low_low))
"""
ACTIVATION = ("sock=tcp", "bind=127.0.0.1:80", "listen", "handoff", "accept", "getpeername",
              "recv", "send")


@pytest.fixture(scope="module")
def small(compile_cil: CompileCil) -> tuple[Path, Policy]:
    path = compile_cil(POLICY)
    return path, load_policy([str(path)], use_cache=False)


def _scenarios(user: Policy, *traces: spec.TraceArgs) -> tuple[Scenario, ...]:
    found = [spec.trace_scenario(t) for t in traces]
    return tuple(spec.with_contexts(found, lambda t: str(user.context_for_domain(t))))


def _inputs(path: Path, user: Policy, *traces: spec.TraceArgs) -> run.Inputs:
    return run.Inputs(user, path, user.snap.mls, (), _scenarios(user, *traces))


def _with(h: augment.Harness, *extra: str) -> augment.Harness:
    return augment.Harness(h.kernel_type, (*h.statements, *extra))


# ------------------------------------------------------------------ the harness and the proof
def test_harness_on_a_small_policy_changes_no_check(small: tuple[Path, Policy],
                                                    tmp_path: Path) -> None:
    path, user = small
    inp = _inputs(path, user,
                  spec.TraceArgs("svc_t", ACTIVATION, socket_from="act_t"),
                  spec.TraceArgs("cli_t", ("sock=tcp", "connect=127.0.0.1:81", "send")))
    guest = run.guest_policy(inp, tmp_path)
    h = guest.harness
    assert h.kernel_type == "kernel_t"
    assert "(typepermissive kernel_t)" in h.statements
    assert "(allow kernel_t act_t (process (dyntransition)))" in h.statements
    assert "(allow act_t svc_t (process (dyntransition)))" in h.statements
    assert "(allow kernel_t cli_t (process (dyntransition)))" in h.statements
    # only the kernel type gains a network permission
    for st in h.statements:
        words = st.strip("()").replace("(", " ").split()
        if words[0] == "allow" and words[1] != "kernel_t":
            assert words[3] not in NETWORK_CLASSES, st
    guest_policy = load_policy([str(guest.path)], use_cache=False)
    assert "kernel_t" in guest_policy.snap.permissive
    pairs = run.prove(inp, guest_policy, predict)
    # the answers proven equal are real ones: the denied connect stays denied
    cli = pairs[1][1]
    assert not cli["allowed"]
    assert [c["perm"] for st in cli["steps"] for c in st["checks"] if not c["allowed"]] == [
        "name_connect"]
    # the same inputs reuse the verified compile; a damaged one is compiled again
    again = run.guest_policy(inp, tmp_path)
    assert again.path == guest.path
    guest.path.write_bytes(guest.path.read_bytes()[:-1])
    assert run.guest_policy(inp, tmp_path).sha256 == guest.sha256


def test_a_harness_rule_that_changes_a_check_is_caught(small: tuple[Path, Policy],
                                                       tmp_path: Path) -> None:
    path, user = small
    inp = _inputs(path, user, spec.TraceArgs("cli_t", ("sock=tcp", "connect=127.0.0.1:81")))
    base = augment.policy_cil(path, False)
    honest = augment.harness_for("kernel_t", run.test_domains(inp.scenarios, "kernel_t"),
                                 augment.declared_classes(base))
    bad = augment.compile_guest(
        base, (), _with(honest, "(allow cli_t port_t (tcp_socket (name_connect)))"), tmp_path)
    with pytest.raises(run.CannotRun, match=r"cli_t -> port_t tcp_socket name_connect: "
                       r"allowed False on your policy, True on the guest policy"):
        run.prove(inp, load_policy([str(bad.path)], use_cache=False), predict)


@pytest.mark.heavy
def test_proof_on_the_reference_policy(refpolicy_standard: Path, fixture_cache_dir: Path
                                       ) -> None:
    user = load_policy([str(refpolicy_standard)])
    inp = _inputs(refpolicy_standard, user,
                  spec.TraceArgs("httpd_t", ACTIVATION, socket_from="init_t"))
    out = fixture_cache_dir / "verify-guest"  # kept across runs (verified by sha256)
    guest = run.guest_policy(inp, out)
    assert "(allow init_t httpd_t (process (dyntransition)))" in guest.harness.statements
    ((_, pred),) = run.prove(inp, load_policy([str(guest.path)]), predict)
    assert [st["errno"] for st in pred["steps"]][:5] == [None, None, None, None, "EACCES"]
    bad = augment.compile_guest(
        guest.base_cil.read_text(), (),
        _with(guest.harness, "(allow httpd_t init_t (tcp_socket (accept)))"), out)
    with pytest.raises(run.CannotRun, match=r"step 5 \(accept\).*httpd_t -> init_t tcp_socket "
                       r"accept: allowed False on your policy, True on the guest policy"):
        run.prove(inp, load_policy([str(bad.path)]), predict)


def test_kernel_type_is_refused(small: tuple[Path, Policy]) -> None:
    path, user = small
    inp = _inputs(path, user, spec.TraceArgs("kernel_t", ("sock=tcp",)))
    with pytest.raises(InputError, match="kernel_t is the type of the kernel initial SID"):
        run.guest_policy(inp)
    inp = _inputs(path, user, spec.TraceArgs("svc_t", ACTIVATION, socket_from="kernel_t"))
    with pytest.raises(InputError, match="--socket-from: kernel_t"):
        run.guest_policy(inp)


# ------------------------------------------------------------------ SPEC and command line
def test_trace_gets_the_peers_its_program_needs() -> None:
    s = spec.trace_scenario(spec.TraceArgs("httpd_t", ACTIVATION, socket_from="init_t"))
    assert s.steps[:4] == ["sock=tcp", "bind=127.0.0.1:80", "listen", "ready"]
    assert s.after == ["sock=tcp", "connect=127.0.0.1:80", "send", "recv", "rstclose"]
    assert s.program_steps() == list(ACTIVATION)  # selnet is asked the user's steps
    c = spec.trace_scenario(spec.TraceArgs("x_t", ("sock=tcp6", "connect=[::1]:5432", "send")))
    assert c.before[:3] == ["sock=tcp6", "reuse", "bind=[::1]:5432"] and not c.after
    u = spec.trace_scenario(spec.TraceArgs("x_t", ("sock=udp", "connect=127.0.0.1:53", "send",
                                                   "recv")))
    assert u.before[:2] == ["sock=udp", "bind=127.0.0.1:53"]
    one = spec.trace_scenario(spec.TraceArgs(
        "x_t", ("sock=tcp", "listen", "accept"),
        sysctl={"net.ipv4.ip_local_port_range": "40000 40000"}))
    assert one.after[:3] == ["sock=tcp", "bind=127.0.0.1:30001", "connect=127.0.0.1:40000"]


@pytest.mark.parametrize(("steps", "message"), [
    (("sock=tcp", "connect=10.0.0.1:80"), "only a loopback interface"),
    (("sock=udp", "sendto=192.0.2.1:53"), "only a loopback interface"),
    (("sock=tcp", "bind=127.0.0.1:80", "ready"), "not a step of selnet trace"),
    (("sock=tcp", "listen", "accept"), "ip_local_port_range"),
    (("bind=127.0.0.1:80",), "starts with sock="),
])
def test_bad_traces_are_refused(steps: tuple[str, ...], message: str) -> None:
    with pytest.raises(InputError, match=message):
        spec.trace_scenario(spec.TraceArgs("x_t", steps))


def test_spec_policy_keys_are_ignored(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text('policy = "refpolicy-mcs"\n[[scenario]]\nname = "a"\nop = "connect"\n'
                 'domain = "cli_t"\naddr = "127.0.0.1:80/tcp"\n'
                 '[[matrix]]\nname = "b_{p}"\npolicy = "other"\nop = "bind"\ndomain = "act_t"\n'
                 'addr = "127.0.0.1:{p}/tcp"\nvary.p = ["80", "81"]\n')
    found = spec.load_spec(f)
    assert [(s.name, s.policy) for s in found] == [("a", "user"), ("b_80", "user"),
                                                   ("b_81", "user")]
    f.write_text('[[scenario]]\nname = "a"\nop = "connect"\ndomain = "x"\n'
                 'addr = "10.1.1.1:80"\n')
    with pytest.raises(InputError, match="only a loopback"):
        spec.load_spec(f)
    f.write_text('[[scenario]]\nname = "a"\nop = "connect"\ndomain = "x"\nport = 1\n')
    with pytest.raises(InputError, match=r"unknown field\(s\) \['port'\]"):
        spec.load_spec(f)


# ------------------------------------------------------------------ the host's tools
def test_missing_qemu_names_the_apt_get_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool, _ in run.TOOLS:  # every tool but QEMU
        found = shutil.which(tool)
        if found and tool != "qemu-system-x86_64":
            os.symlink(found, bindir / tool)
    monkeypatch.setenv("PATH", str(bindir))
    rc = main(["verify", "web_t", "sock=tcp", "bind=127.0.0.1:80"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "missing qemu-system-x86_64 (qemu-system-x86)" in err[0]
    assert "apt-get install -y --no-install-recommends qemu-system-x86" in err[0]
    rc = main(["verify", "web_t", "sock=tcp", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 2 and out["exit"] == 2 and "qemu-system-x86" in out["error"]
    _valid(out)


def _valid(obj: object) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "docs" / "schemas" / "verify.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(obj)


# ------------------------------------------------------------------ recorded real boots
def _recorded(user: Policy, console: str) -> run.Verification:
    (s,) = _scenarios(user, spec.TraceArgs("httpd_t", ACTIVATION, socket_from="init_t"))
    res = qemu.parse((DATA / console).read_text())
    results = run.compare_all([(s, predict(user, s))], res, "kernel_t")
    h = augment.harness_for("kernel_t", [augment.TestDomains("httpd_t", "init_t")], {})
    guest = augment.GuestPolicy(Path("guest.33"), "0" * 64, h, Path("b.cil"), Path("h.cil"), ())
    return run.Verification(tuple(results), guest, "6.1.0-57-amd64", "linux-image-x 1",
                            False, 20.0, DATA / console)


def test_recorded_boots_agree_and_match_the_schema(refpolicy_standard: Path) -> None:
    from selnet.render.facts import policy_json
    from selnet.render.jsonout import SCHEMA_VERSION

    user = load_policy([str(refpolicy_standard)])
    v = _recorded(user, "refpolicy-activation.console")
    assert v.agree, v.results[0].differences
    r = v.results[0]
    assert [(x.step, x.predicted, x.kernel) for x in r.steps][3:5] == [
        ("accept", "EACCES", "EACCES"), ("getpeername", "not reached", "not reached")]
    assert r.kernel_denial is not None and r.kernel_denial["perms"] == ["accept"]
    lines = verify_lines(v, full=False)
    assert any(ln.startswith("agree  verify_trace") for ln in lines)
    # the envelope cli.options.emit puts around every answer
    _valid({"schema_version": SCHEMA_VERSION, **verify_json(v), "policy": policy_json(user)})

    # the boot with the layered module: agrees on the policy with the module ...
    module = ROOT / "conformance" / "verify" / "httpd-accept.cil"
    layered = load_policy([str(refpolicy_standard), str(module)])
    assert _recorded(layered, "refpolicy-activation-module.console").agree
    # ... and not on the policy without it: the kernel accepted, selnet predicts EACCES
    wrong = _recorded(user, "refpolicy-activation-module.console")
    assert not wrong.agree
    assert any("accept: selnet predicts EACCES, kernel ok" in d
               for d in wrong.results[0].differences)
    assert any(ln.startswith("DISAGREE") for ln in verify_lines(wrong, full=False))
