"""Findings of a fuzz campaign: bad input or environment is one line and exit 2, output
files are replaced atomically and never over a non-regular file, one audit line never
aborts a run, and errors under --json are JSON too."""

from __future__ import annotations

import errno
import io
import json
import os
import stat
from pathlib import Path

import pytest

from selnet.audit.avclog import MAX_LINE_CHARS, AvcLogParser
from selnet.cli import main
from selnet.policy.source import example_policy_path

POLICY = ["--policy", str(example_policy_path())]
HUGE = "9" * 5000
DENIAL = ("type=AVC msg=audit(1700000000.123:{serial}): avc:  denied  {{ name_connect }} for  "
          "pid=1234 comm=\"web\" dest={port} scontext=system_u:system_r:web_t:s0 "
          "tcontext=system_u:object_r:db_port_t:s0 tclass=tcp_socket permissive=0\n")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main([*args, *POLICY])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str, fragment: str = "") -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("selnet: ") and "internal error" not in lines[0], lines[0]
    assert fragment in lines[0], lines[0]
    assert len(lines[0]) < 400, lines[0]
    return lines[0]


# -- 1. output files ------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["csv", "jsonl", "sqlite"])
def test_matrix_refuses_a_fifo_and_keeps_it(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                            fmt: str) -> None:
    fifo = tmp_path / "out"
    os.mkfifo(fifo)
    code, _, err = run(capsys, "matrix", "--format", fmt, "-o", str(fifo))
    assert code == 2
    one_line_error(err, "not a regular file")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp file left


@pytest.mark.parametrize("fmt", ["csv", "sqlite"])
def test_matrix_refuses_a_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                    fmt: str) -> None:
    target = tmp_path / "dir"
    target.mkdir()
    code, _, err = run(capsys, "matrix", "--format", fmt, "-o", str(target))
    assert code == 2
    one_line_error(err, "directory")
    assert target.is_dir() and not any(target.iterdir())


def test_matrix_output_in_a_missing_directory(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    code, _, err = run(capsys, "matrix", "-o", str(tmp_path / "nope" / "m.csv"))
    assert code == 2
    one_line_error(err, "not a directory")


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "sqlite"])
def test_matrix_replaces_a_regular_file_atomically(capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path, fmt: str) -> None:
    target = tmp_path / f"m.{fmt}"
    target.write_text("old\n")
    target.chmod(0o640)
    inode = target.stat().st_ino
    code, _, err = run(capsys, "matrix", "--format", fmt, "-o", str(target))
    assert code == 0, err
    assert target.stat().st_ino != inode  # a new file renamed into place
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.read_bytes() != b"old\n"
    if fmt == "sqlite":
        import sqlite3

        con = sqlite3.connect(target)
        assert con.execute("SELECT count(*) FROM matrix").fetchone()[0] > 0
        con.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


# -- 2. one audit line never aborts the run ---------------------------------------------
def test_audit_huge_numbers_are_one_malformed_line(capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_text(DENIAL.format(serial=1, port=HUGE)
                   + DENIAL.format(serial=2, port="5432").replace("dest=", f"src={HUGE} dest=")
                   + f"type=SYSCALL msg=audit(1700000000.123:3): syscall={HUGE} exit=-{HUGE}\n"
                   + DENIAL.format(serial=HUGE, port="5432")
                   + DENIAL.format(serial=4, port="5432"))
    code, out, err = run(capsys, "audit", str(log), "--json")
    assert code == 1, err
    stats = json.loads(out)["stats"]
    assert stats["malformed"] == 2
    assert stats["network_denials"] == 2
    assert HUGE not in out


# -- 3. a huge line -------------------------------------------------------------------
def test_audit_a_5mb_line_is_counted_and_the_denial_after_it_found(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    with log.open("w") as fh:
        fh.write("type=AVC msg=audit(1700000000.1:1): avc:  denied  { name_bind } for "
                 + "x" * 5_000_000 + "\n")
        fh.write(DENIAL.format(serial=2, port="5432"))
    code, out, err = run(capsys, "audit", str(log), "--json")
    assert code == 1, err
    report = json.loads(out)
    assert report["stats"]["malformed"] == 1
    assert report["stats"]["network_denials"] == 1
    assert report["groups"][0]["domain"] == "web_t"
    assert len(out) < 100_000
    assert all(len(s["reason"]) <= 200 for s in report["stats"]["malformed_samples"])


def test_parser_reads_a_long_line_in_bounded_pieces() -> None:
    class Reader(io.StringIO):
        biggest = 0

        def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
            got = super().readline(size)
            Reader.biggest = max(Reader.biggest, len(got))
            return got

    src = Reader("y" * (3 * MAX_LINE_CHARS) + "\n" + DENIAL.format(serial=2, port="5432"))
    parser = AvcLogParser()
    events = list(parser.events(src))
    assert len(events) == 1
    assert parser.stats.malformed == 1 and parser.stats.lines == 2
    assert Reader.biggest <= MAX_LINE_CHARS + 1


def test_parser_long_items_of_a_list() -> None:
    parser = AvcLogParser()
    events = list(parser.events(["z" * (MAX_LINE_CHARS + 10), DENIAL.format(serial=2, port="1")]))
    assert len(events) == 1 and parser.stats.malformed == 1


# -- 4. bad input or environment: exit 2, one line --------------------------------------
@pytest.mark.parametrize("args", [
    ("label", "port", HUGE),
    ("label", "port", f"{HUGE}/udp"),
    ("connect", "web_t", f"127.0.0.1:{HUGE}"),
    ("connect", "web_t", "127.0.0.1:5432", "--bind", f"127.0.0.1:{HUGE}"),
    ("connect", "web_t", "127.0.0.1:5432", "--sysctl", f"ip_unprivileged_port_start={HUGE}"),
    ("connect", "web_t", "127.0.0.1:5432", "--sysctl", f"ip_local_port_range={HUGE} 2"),
    ("port", f"{HUGE}/tcp"),
])
def test_huge_numbers_are_bad_input(capsys: pytest.CaptureFixture[str], args: tuple[str, ...]) -> None:
    code, _, err = run(capsys, *args)
    assert code == 2
    one_line_error(err)


class _Failing(io.TextIOBase):
    def __init__(self, err: int) -> None:
        self.err = err

    def write(self, s: str) -> int:
        raise OSError(self.err, os.strerror(self.err))

    def isatty(self) -> bool:
        return False


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EBADF])
def test_stdout_write_errors(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                             err: int) -> None:
    monkeypatch.setattr("sys.stdout", _Failing(err))
    code = main(["info", *POLICY])
    assert code == 2
    one_line_error(capsys.readouterr().err, "cannot write the output")


def test_stdout_broken_pipe_is_success(capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdout", _Failing(errno.EPIPE))
    assert main(["info", *POLICY]) == 0


# -- 5. bad input accepted as success -----------------------------------------------------
@pytest.mark.parametrize("domain,fragment", [
    ("nonexistent_t", "unknown domain 'nonexistent_t'"),
    ("", "unknown domain ''"),
    ("domain", "it is an attribute"),
    ("htppd_t", "unknown domain"),
    ("wbe_t", "did you mean web_t?"),
    ("http_port_t", "not a domain"),
])
def test_matrix_unknown_domain(capsys: pytest.CaptureFixture[str], domain: str,
                               fragment: str) -> None:
    code, out, err = run(capsys, "matrix", "--domain", domain)
    assert code == 2 and out == ""
    one_line_error(err, fragment)


@pytest.mark.parametrize("args,fragment", [
    (("connect", "system_u:system_r:web_t:s0:c5.c2", "127.0.0.1:5432"), "s0:c5.c2"),
    (("connect", "web_t", "127.0.0.1:5432", "--bind", "[::1]:0"), "IPv6"),
    (("connect", "web_t", "[::1]:5432", "--bind", "127.0.0.1"), "IPv4"),
    (("connect", "web_t", "127.0.0.1:5432", "--sockcreate", ""), "--sockcreate"),
    (("connect", "http_port_t", "127.0.0.1:5432"), "not a domain"),
    (("connect", "staff_u:staff_r:web_t:s0", "127.0.0.1:5432"), "may not have type web_t"),
    (("connect", "staff_u:system_r:web_t:s0", "127.0.0.1:5432"), "may not have role system_r"),
    (("connect", "web_t", "127.0.0.1:5432", "--bool", "web_can_conect_db=on"),
     "did you mean web_can_connect_db?"),
    (("port", "--type", "htp_port_t"), "did you mean http_port_t"),
])
def test_bad_input_refused(capsys: pytest.CaptureFixture[str], args: tuple[str, ...],
                           fragment: str) -> None:
    code, _, err = run(capsys, *args)
    assert code == 2
    one_line_error(err, fragment)


def test_valid_contexts_and_domains_still_work(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (("connect", "staff_u:staff_r:client_t:s0", "127.0.0.1:5432"),
                 ("connect", "system_u:system_r:web_t:s0:c2.c5", "127.0.0.1:5432"),
                 ("connect", "web_t", "[::1]:5432", "--bind", "[::1]:0"),
                 ("connect", "helper_t", "127.0.0.1:5432", "--sockcreate", "helper_sock_t"),
                 ("connect", "web_t", "[::ffff:127.0.0.1]:5432", "--bind", "::ffff:127.0.0.1")):
        code, _, err = run(capsys, *args)
        assert code in (0, 1), (args, err)


def test_every_example_domain_is_a_domain(capsys: pytest.CaptureFixture[str]) -> None:
    from selnet.policy.loader import load_policy

    policy = load_policy([str(example_policy_path())])
    for d in policy.domains():
        assert policy.context_for_domain(d).type == d


def test_bare_type_of_a_policy_without_role_types(compile_cil) -> None:  # type: ignore[no-untyped-def]
    from selnet.policy.loader import load_policy

    path = compile_cil("(type solo_t) (allow solo_t self (tcp_socket (create)))")
    policy = load_policy([str(path)])
    if not any(t for r, t in policy.snap.role_types.items() if r != "object_r"):
        assert policy.context_for_domain("solo_t").type == "solo_t"


# -- 6. errors under --json --------------------------------------------------------------
def test_errors_under_json_are_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "connect", "htppd_t", "127.0.0.1:5432", "--json")
    assert code == 2
    line = one_line_error(err, "unknown domain 'htppd_t'")
    obj = json.loads(out)
    assert obj == {"schema_version": 1, "error": line.removeprefix("selnet: "), "exit": 2}


def test_suggestion_on_the_reference_policy(capsys: pytest.CaptureFixture[str],
                                            refpolicy_standard: Path) -> None:
    code = main(["connect", "htppd_t", "127.0.0.1:80", "--policy", str(refpolicy_standard)])
    assert code == 2
    one_line_error(capsys.readouterr().err, "did you mean httpd_t?")
    code = main(["connect", "staff_u:staff_r:httpd_t:s0", "127.0.0.1:80",
                 "--policy", str(refpolicy_standard)])
    assert code == 2
    one_line_error(capsys.readouterr().err, "may not have type httpd_t")


# -- 5. answers name the inputs, never a deleted scratch compile ------------------------
def test_no_cache_answers_name_the_cil_files(capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    """--no-cache compiles CIL into a scratch directory that is gone once the policy is
    read: audit --json and the matrix's SQLite metadata must name the CIL file."""
    import sqlite3

    from selnet.policy.loader import load_policy

    cil = example_policy_path()
    pol = load_policy([str(cil)], use_cache=False)
    assert pol.source.binary == cil and pol.source.scratch is None
    log = tmp_path / "audit.log"
    log.write_text(DENIAL.format(serial=1, port=5432))
    assert main(["audit", str(log), "--json", "--no-cache", "--no-interfaces", *POLICY]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["policy"]["path"] == str(cil) and out["policy"]["inputs"] == [str(cil)]
    db = tmp_path / "m.sqlite"
    assert main(["matrix", "--format", "sqlite", "-o", str(db), "--no-cache",
                 "--domain", "web_t", *POLICY]) == 0
    capsys.readouterr()
    with sqlite3.connect(db) as con:
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    assert meta["policy"] == str(cil)
    # An unusable cache (writable by others) compiles into scratch too: the same answer.
    xdg = tmp_path / "xdg"
    xdg.mkdir(mode=0o777)
    os.chmod(xdg, 0o777)
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    monkeypatch.setattr("selnet.policy.source._noted_unsafe", False)
    assert main(["audit", str(log), "--json", "--no-interfaces", *POLICY]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["policy"]["path"] == str(cil)
    assert "not using the cache" in captured.err


def test_lint_refuses_a_fifo(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """lint read a FIFO and waited forever for a writer (fuzz campaign, seed 1202)."""
    fifo = tmp_path / "mod.te"
    os.mkfifo(fifo)
    good = tmp_path / "ok.te"
    good.write_text("allow web_t self:tcp_socket { create connect };\n")
    assert main(["lint", str(good), str(fifo)]) == 2
    one_line_error(capsys.readouterr().err, "not a regular file")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert main(["lint", str(good)]) in (0, 1)  # the regular file alone is linted
