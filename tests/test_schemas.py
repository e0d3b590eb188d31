"""Every command's --json output validated against its JSON Schema in docs/schemas/, on the
bundled example policy and on a small compiled policy, errors included."""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

jsonschema = pytest.importorskip("jsonschema")  # Debian python3-jsonschema (scripts/bootstrap)

from selnet.cli.main import build_parser, main  # noqa: E402
from tests.conftest import EXAMPLE_CIL, ROOT, CompileCil  # noqa: E402

SCHEMAS = ROOT / "docs" / "schemas"
DATA = ROOT / "tests" / "data"
# The audit tests' small policy (web_t, worker_t, ports under booleans and a constraint).
SMALL_SNIPPET = (DATA / "audit" / "audit-policy.cil").read_text()


def schema(command: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads((SCHEMAS / f"{command}.schema.json").read_text())
    return out


def run_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, list[Any]]:
    rc = main([*argv, "--json"])
    out = capsys.readouterr().out
    return rc, [json.loads(line) for line in out.splitlines()]


def _leaves(errors: list[Any]) -> list[Any]:
    out = []
    for e in errors:
        out += _leaves(list(e.context)) if e.context else [e]
    return out


def assert_valid(command: str, obj: Any) -> None:
    validator = jsonschema.Draft202012Validator(schema(command))
    errors = list(validator.iter_errors(obj))
    if errors:  # the deepest failure inside the oneOf (answer | error), in one line
        leaf = max(_leaves(errors), key=lambda e: len(e.absolute_path))
        raise AssertionError(f"{command}: {leaf.message[:300]} at {list(leaf.absolute_path)}")


def json_commands() -> list[str]:
    """Every subcommand of the real parser that takes --json."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(name for name, p in sub.choices.items()
                  if any("--json" in a.option_strings for a in p._actions))


def test_every_command_has_a_schema() -> None:
    missing = [c for c in json_commands() if not (SCHEMAS / f"{c}.schema.json").is_file()]
    assert not missing, f"no JSON Schema in docs/schemas/ for: {', '.join(missing)}"


@pytest.mark.parametrize("path", sorted(SCHEMAS.glob("*.schema.json")), ids=lambda p: p.name)
def test_schemas_are_valid_draft_2020_12(path: Path) -> None:
    s = json.loads(path.read_text())
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(s)


def _cases(p: list[str], dom: str, other: str, port_type: str,
           out: Path) -> list[tuple[str, list[str], int | None]]:
    """(command, argv, exit status; None: 0 or 1, an answer) on a policy with domains dom
    and other."""
    return [
        ("info", ["info", *p], 0),
        ("label", ["label", "port", "5432/tcp", *p], 0),
        ("label", ["label", "node", "127.0.0.1", *p], 0),
        ("label", ["label", "netif", "lo", *p], 0),
        ("connect", ["connect", dom, "127.0.0.1:5432", *p], None),
        ("connect", ["connect", dom, "[::1]:53/udp", "--bind", "::1", *p], None),
        ("listen", ["listen", dom, "0.0.0.0:8080", *p], None),
        ("listen", ["listen", other, "0.0.0.0:8080", *p], None),
        ("bind", ["bind", other, "0.0.0.0:5432", *p], None),
        ("send", ["send", dom, "127.0.0.1:53/udp", *p], None),
        ("domain", ["domain", dom, *p], None),
        ("port", ["port", "5432", *p], None),
        ("port", ["port", "--type", port_type, *p], None),
        ("matrix", ["matrix", "--domain", dom, *p], None),
        ("matrix", ["matrix", *p, "-o", str(out / "m.csv")], None),
        ("explain", ["explain", dom, *p], None),
        ("generate", ["generate", "myapp", "--bind", "8443/tcp", "--connect", "5432/tcp", *p,
                      "-o", str(out)], None),
        ("lint", ["lint", str(DATA / "lint"), *p], 1),
        # errors: the same one line as JSON, validated by the command's own schema
        ("domain", ["domain", "nope_t", *p], 2),
        ("connect", ["connect", dom, "127.0.0.1:99999", *p], 2),
        ("label", ["label", "port", "80/tcp", "--policy", str(out / "missing.policy")], 2),
    ]


def test_example_policy_outputs_match_their_schemas(capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    p = ["--policy", str(EXAMPLE_CIL)]
    cases = [*_cases(p, "web_t", "client_t", "http_port_t", tmp_path),
             ("connect", ["connect", "web_t", "127.0.0.1:5432", "--labeled", "netlabel",
                          "--secmark", "system_u:object_r:db_port_t:s0", *p], 1),
             ("explain", ["explain", *p], 0)]
    for command, argv, code in cases:
        rc, objs = run_json(capsys, argv)
        assert rc == code if code is not None else rc in (0, 1), (argv, rc)
        assert objs, argv
        for obj in objs:
            assert_valid(command, obj)
            if code == 2:
                assert obj["exit"] == 2 and obj["error"], obj


def test_small_policy_outputs_match_their_schemas(capsys: pytest.CaptureFixture[str],
                                                  compile_cil: CompileCil, tmp_path: Path) -> None:
    p = ["--policy", str(compile_cil(SMALL_SNIPPET))]
    for command, argv, code in _cases(p, "web_t", "worker_t", "svc_port_t", tmp_path):
        rc, objs = run_json(capsys, argv)
        assert rc == code if code is not None else rc in (0, 1), (argv, rc)
        assert objs, argv
        for obj in objs:
            assert_valid(command, obj)
    # audit, its report and its --module answer, on the same policy's denials
    log = str(DATA / "audit" / "ausearch-connect.log")
    # (the module fixes every record: exit 0; the reports find denials: exit 1)
    for argv, code in ((["audit", *p, log], 1), (["audit", *p, log, "--show-broad"], 1),
                       (["audit", *p, log, "--module", "myfix", "-o", str(tmp_path)], 0)):
        rc, objs = run_json(capsys, argv)
        assert rc == code and len(objs) == 1, (argv, rc)
        assert_valid("audit", objs[0])


def test_audit_follow_lines_match_the_schema(compile_cil: CompileCil) -> None:
    """audit --follow --json on stdin: one line per new distinct denial, then the summary
    when stdin ends."""
    log = (DATA / "audit" / "ausearch-connect.log").read_text()
    proc = subprocess.run(
        [sys.executable, "-m", "selnet", "audit", "--follow", "-", "--from-start", "--json",
         "--policy", str(compile_cil(SMALL_SNIPPET))],
        input=log, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [o["type"] for o in lines] == ["group", "group", "summary"]
    assert lines[-1]["distinct_network_denials"] == 2
    for obj in lines:
        assert_valid("audit", obj)


def test_layered_policy_names_its_modules(capsys: pytest.CaptureFixture[str],
                                         compile_cil: CompileCil) -> None:
    # a binary base and a module applied in memory: the policy object lists the module and
    # the changes, and the schema allows them
    base = compile_cil(EXAMPLE_CIL.read_text(), base=False)
    argv = ["label", "port", "7777/tcp", "--policy", str(base),
            "--policy", str(DATA / "modules" / "myapp.cil")]
    rc, (obj,) = run_json(capsys, argv)
    assert rc == 0 and obj["type"] == "myapp_port_t"
    assert [m["kind"] for m in obj["policy"]["modules"]] == ["cil"]
    assert any(c.startswith("(portcon tcp 7777 system_u:object_r:myapp_port_t")
               for c in obj["policy"]["changes"]), obj["policy"]["changes"]
    assert_valid("label", obj)


def test_schemas_reject_what_selnet_never_prints(capsys: pytest.CaptureFixture[str]) -> None:
    """The schemas are closed: a wrong verdict word, a missing key, an unknown key or a
    missing schema_version fails."""
    rc, (good,) = run_json(capsys, ["connect", "web_t", "127.0.0.1:5432", "--policy", str(EXAMPLE_CIL)])
    assert rc == 1
    assert_valid("connect", good)
    bad_reason = copy.deepcopy(good)
    bad_reason["checks"][0]["reason"] = "maybe"
    no_checks = {k: v for k, v in good.items() if k != "checks"}
    extra = {**good, "verdict": "DENIED"}
    unversioned = {k: v for k, v in good.items() if k != "schema_version"}
    wrong_op = {**good, "operation": "listen"}
    bad_fix = copy.deepcopy(good)
    denied = good["first_denial"]
    bad_fix["checks"][denied]["fixes"][0]["kind"] = "reboot"
    for obj in (bad_reason, no_checks, extra, unversioned, wrong_op, bad_fix):
        assert list(jsonschema.Draft202012Validator(schema("connect")).iter_errors(obj))
    # an error object is valid for every command, but not with another status
    error = {"schema_version": 1, "error": "x", "exit": 2}
    for command in ("info", "label", "connect", "listen", "bind", "send", "domain", "port", "matrix",
                    "explain", "generate", "audit", "lint"):
        assert_valid(command, error)
    assert list(jsonschema.Draft202012Validator(schema("info")).iter_errors({**error, "exit": 0}))
