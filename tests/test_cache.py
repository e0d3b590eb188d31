"""The on-disk index cache: reused when valid, rebuilt silently when not."""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest

from selnet.cli import main
from selnet.policy import cache, source
from selnet.policy.loader import load_policy
from selnet.policy.source import resolve
from tests.conftest import EXAMPLE_CIL


def test_second_load_comes_from_cache(compile_cil, tmp_path: Path,  # type: ignore[no-untyped-def]
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # a cache of its own: first load builds
    path = compile_cil("(handleunknown deny) (type c1_t) (roletype system_r c1_t)")
    first = load_policy([str(path)])
    second = load_policy([str(path)])
    assert not first.from_cache and second.from_cache
    assert second.snap.sha256 == first.snap.sha256
    assert cache.snapshot_path(first.snap.sha256).exists()


def test_corrupt_cache_is_rebuilt(compile_cil) -> None:  # type: ignore[no-untyped-def]
    path = compile_cil("(handleunknown deny) (type c2_t) (roletype system_r c2_t)")
    pol = load_policy([str(path)])
    entry = cache.snapshot_path(pol.snap.sha256)
    entry.write_bytes(entry.read_bytes()[:100])  # truncated
    again = load_policy([str(path)])
    assert not again.from_cache and "c2_t" in again.snap.type_attrs
    entry.write_bytes(b"garbage")
    assert not load_policy([str(path)]).from_cache
    assert load_policy([str(path)]).from_cache  # rebuilt and stored


def test_cache_for_another_policy_is_not_trusted(compile_cil) -> None:  # type: ignore[no-untyped-def]
    a = compile_cil("(handleunknown deny) (type c3_t) (roletype system_r c3_t)")
    b = compile_cil("(handleunknown deny) (type c4_t) (roletype system_r c4_t)")
    pa, pb = load_policy([str(a)]), load_policy([str(b)])
    # Plant a's snapshot under b's name: its recorded sha256 does not match.
    cache.snapshot_path(pb.snap.sha256).write_bytes(cache.snapshot_path(pa.snap.sha256).read_bytes())
    again = load_policy([str(b)])
    assert not again.from_cache and "c4_t" in again.snap.type_attrs


def test_source_policies_compile_once(tmp_path: Path) -> None:
    from tests.conftest import BASE_CIL

    snippet = tmp_path / "s.cil"
    snippet.write_text("(handleunknown deny) (type s_t) (roletype system_r s_t)\n")
    one = resolve([str(BASE_CIL), str(snippet)])
    mtime = one.binary.stat().st_mtime_ns
    two = resolve([str(BASE_CIL), str(snippet)])
    assert two.binary == one.binary and two.binary.stat().st_mtime_ns == mtime
    assert one.origin == "cil" and one.from_source


# -- hardening: integrity, no code in the cache, safe directories ------------------------
SNIPPET = "(handleunknown deny) (type h_t) (roletype system_r h_t)"


@pytest.fixture()
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private XDG_CACHE_HOME for one test; the unsafe-directory note not yet given."""
    home = tmp_path / "xdg"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    monkeypatch.setattr(source, "_noted_unsafe", False)
    return home


def test_every_flipped_bit_of_the_payload_is_caught(compile_cil, own_cache: Path) -> None:  # type: ignore[no-untyped-def]
    path = compile_cil(SNIPPET)
    pol = load_policy([str(path)])
    entry = cache.snapshot_path(pol.snap.sha256)
    good = entry.read_bytes()
    assert good.startswith(b"selnet-snapshot ") and b"h_t" in good
    header_end = good.index(b"\n") + 1
    for pos in (0, header_end - 2, header_end, header_end + 1, len(good) // 2, len(good) - 1,
                good.index(b"h_t")):
        flipped = bytearray(good)
        flipped[pos] ^= 0x01
        entry.write_bytes(bytes(flipped))
        assert cache.load_cached(pol.snap.sha256) is None, pos
    entry.write_bytes(good)
    assert cache.load_cached(pol.snap.sha256) == pol.snap


def test_the_cache_never_runs_code(compile_cil, own_cache: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = compile_cil(SNIPPET)
    pol = load_policy([str(path)])
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (open, (str(marker), "w"))

    # A pickle under a header whose every field (policy, payload sha256, length) is right.
    payload = pickle.dumps(Evil())
    digest = hashlib.sha256(payload).hexdigest()
    header = f"selnet-snapshot {cache._FORMAT} {pol.snap.sha256} {digest} {len(payload)}\n"
    cache.snapshot_path(pol.snap.sha256).write_bytes(header.encode() + payload)
    again = load_policy([str(path)])
    assert not again.from_cache and not marker.exists()


def test_a_cache_dir_others_can_write_is_not_used(compile_cil, own_cache: Path,  # type: ignore[no-untyped-def]
                                                  capfd: pytest.CaptureFixture[str]) -> None:
    path = compile_cil(SNIPPET)
    (own_cache / "selnet").mkdir(mode=0o700)
    (own_cache / "selnet").chmod(0o777)
    for _ in range(2):
        assert not load_policy([str(path)]).from_cache
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is writable by others" in err[0], err
    assert os.listdir(own_cache / "selnet") == []


def test_an_ancestor_others_can_write_is_not_used(compile_cil, own_cache: Path,  # type: ignore[no-untyped-def]
                                                  capfd: pytest.CaptureFixture[str]) -> None:
    own_cache.chmod(0o777)  # not sticky: anyone could swap selnet/ for their own
    assert not load_policy([str(compile_cil(SNIPPET))]).from_cache
    assert "not using the cache" in capfd.readouterr().err
    assert not (own_cache / "selnet").exists()
    own_cache.chmod(0o1777)  # sticky, as /tmp: fine
    assert load_policy([str(compile_cil(SNIPPET))]).from_cache is False
    assert load_policy([str(compile_cil(SNIPPET))]).from_cache


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the directory away")
def test_a_cache_dir_of_another_user_is_not_used(compile_cil, own_cache: Path,  # type: ignore[no-untyped-def]
                                                 capfd: pytest.CaptureFixture[str]) -> None:
    (own_cache / "selnet").mkdir(mode=0o700)
    os.chown(own_cache / "selnet", 65534, 65534)
    assert not load_policy([str(compile_cil(SNIPPET))]).from_cache
    assert "is not owned by you" in capfd.readouterr().err
    assert os.listdir(own_cache / "selnet") == []


def test_cache_home_that_is_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
                                   compile_cil, capfd: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "not-a-dir"
    f.write_text("x")
    monkeypatch.setenv("XDG_CACHE_HOME", str(f))
    assert main(["info", "--policy", str(EXAMPLE_CIL)]) == 0
    assert main(["info", "--policy", str(compile_cil(SNIPPET))]) == 0
    assert capfd.readouterr().err == ""


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory")
def test_read_only_cache_dir(own_cache: Path, capfd: pytest.CaptureFixture[str]) -> None:
    (own_cache / "selnet").mkdir(mode=0o500)
    assert main(["info", "--policy", str(EXAMPLE_CIL)]) == 0
    assert capfd.readouterr().err == ""


# -- the compiled-source cache -------------------------------------------------------------
def _compiled(own_cache: Path) -> list[Path]:
    return sorted((own_cache / "selnet" / "compiled").glob("*.policy"))


def test_a_damaged_compiled_binary_is_compiled_again(own_cache: Path, compile_cil) -> None:  # type: ignore[no-untyped-def]
    first = resolve([str(EXAMPLE_CIL)])
    good = first.binary.read_bytes()
    first.binary.write_bytes(good[: len(good) // 2])  # truncated
    again = resolve([str(EXAMPLE_CIL)])
    assert again.binary.read_bytes() == good and again.sha256 == first.sha256
    # Another policy's binary put in its place.
    other = compile_cil(SNIPPET)
    first.binary.write_bytes(other.read_bytes())
    assert resolve([str(EXAMPLE_CIL)]).binary.read_bytes() == good
    # Its record damaged.
    record = first.binary.with_suffix(".sha256")
    record.write_text(record.read_text().replace("1", "2", 1))
    third = resolve([str(EXAMPLE_CIL)])
    assert third.binary.read_bytes() == good and third.scratch is None


def test_no_cache_writes_nothing(own_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch_root))
    pol = load_policy([str(EXAMPLE_CIL)], use_cache=False)
    assert "web_t" in pol.snap.type_attrs
    assert not (own_cache / "selnet").exists()
    assert os.listdir(scratch_root) == []  # the scratch compile is gone too
    assert main(["info", "--no-cache", "--policy", str(EXAMPLE_CIL)]) == 0
    assert not (own_cache / "selnet").exists() and os.listdir(scratch_root) == []


def test_no_cache_holds_for_the_interface_index(own_cache: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """explain and the fix engine read the refpolicy interfaces after the policy: under
    --no-cache their index is built in memory and written nowhere."""
    from selnet.fix.interfaces import DEFAULT_INCLUDE_DIR

    if not DEFAULT_INCLUDE_DIR.is_dir():
        pytest.skip("selinux-policy-dev is not installed")
    # The support macros and corenetwork.if's http_port interfaces only: the whole tree
    # takes ~2 s per build, and this test builds twice.
    small = tmp_path / "include"
    shutil.copytree(DEFAULT_INCLUDE_DIR / "support", small / "support")
    (small / "kernel").mkdir()
    sep = "\n########################################\n"
    blocks = (DEFAULT_INCLUDE_DIR / "kernel" / "corenetwork.if").read_text().split(sep)
    (small / "kernel" / "corenetwork.if").write_text(
        sep.join(b for b in blocks if "_http_port'" in b))
    monkeypatch.setattr("selnet.fix.interfaces.DEFAULT_INCLUDE_DIR", small)
    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch_root))
    assert main(["explain", "web_t", "--no-cache", "--policy", str(EXAMPLE_CIL)]) == 0
    assert "corenet_tcp_bind_http_port" in capsys.readouterr().out  # the interfaces were read
    assert not (own_cache / "selnet").exists() and os.listdir(scratch_root) == []
    # With the cache, the same command writes the interface index (the test can see it).
    assert main(["explain", "web_t", "--policy", str(EXAMPLE_CIL)]) == 0
    assert list((own_cache / "selnet").glob("interfaces-*.bin"))


def test_boolean_descriptions_cached_and_verified(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """policy.xml's descriptions come from the verified cache once parsed; a damaged or
    foreign entry is parsed again, never trusted."""
    from selnet.policy import booldoc

    xml = tmp_path / "policy.xml"
    xml.write_text('<policy><module name="m"><bool name="web_ok" dflt="false">'
                   "<desc><p>Allow the web server to connect .</p></desc></bool>"
                   "</module></policy>")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    want = {"web_ok": "Allow the web server to connect."}
    booldoc.boolean_descriptions.cache_clear()
    assert booldoc.boolean_descriptions(xml) == want
    entry = tmp_path / "cache" / "selnet" / "derived" / "booldoc.bin"
    assert entry.is_file()
    calls: list[Path] = []
    real = booldoc._parse
    monkeypatch.setattr(booldoc, "_parse", lambda p: calls.append(p) or real(p))
    booldoc.boolean_descriptions.cache_clear()
    assert booldoc.boolean_descriptions(xml) == want and calls == []  # from the cache
    data = bytearray(entry.read_bytes())
    data[-3] ^= 0x01  # one bit of the payload
    entry.write_bytes(bytes(data))
    booldoc.boolean_descriptions.cache_clear()
    assert booldoc.boolean_descriptions(xml) == want and calls == [xml]
    booldoc.boolean_descriptions.cache_clear()


def test_an_unchanged_policy_is_not_hashed_again(compile_cil, own_cache: Path,  # type: ignore[no-untyped-def]
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The policy's sha256 is remembered under its stat (device, inode, size, mtime,
    ctime) in the verified blob store: the same file is not read again; any write, or a
    damaged memo, means a fresh hash."""
    pol = tmp_path / "policy.bin"
    pol.write_bytes(compile_cil(SNIPPET).read_bytes())
    monkeypatch.setattr(source, "_SETTLED_NS", 0)  # the file was written just now
    hashed: list[int] = []
    real: Callable[[BinaryIO], str] = source._sha256_of

    def counted(f: BinaryIO) -> str:
        hashed.append(1)
        return real(f)

    monkeypatch.setattr(source, "_sha256_of", counted)
    want = hashlib.sha256(pol.read_bytes()).hexdigest()
    assert resolve([str(pol)]).sha256 == want and len(hashed) == 1
    assert resolve([str(pol)]).sha256 == want and len(hashed) == 1  # from the memo
    # Rewritten in place, same size, mtime put back: the ctime still changes.
    st = pol.stat()
    data = bytearray(pol.read_bytes())
    data[-1] ^= 0x01
    with open(pol, "r+b") as f:
        f.write(data)
    os.utime(pol, ns=(st.st_atime_ns, st.st_mtime_ns))
    changed = hashlib.sha256(bytes(data)).hexdigest()
    assert resolve([str(pol)]).sha256 == changed and len(hashed) == 2
    # A memo whose payload is not the one its header was written for: hashed again.
    (memo,) = (own_cache / "selnet" / "derived").glob("sha256-*")
    raw = bytearray(memo.read_bytes())
    raw[-1] = ord("0") if raw[-1] != ord("0") else ord("1")
    memo.write_bytes(bytes(raw))
    assert resolve([str(pol)]).sha256 == changed and len(hashed) == 3
    # --no-cache reads nothing remembered.
    source.allow_caches(False)
    try:
        assert resolve([str(pol)]).sha256 == changed and len(hashed) == 4
    finally:
        source.allow_caches(True)


def test_a_cached_snapshot_decodes_a_section_when_it_is_first_read(  # type: ignore[no-untyped-def]
        compile_cil, own_cache: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The entry is verified whole, then decoded section by section as fields are read: a
    label lookup leaves the rules encoded; every field comes out as extracted."""
    from selnet.cli import main
    from selnet.policy.extract import extract

    path = compile_cil(SNIPPET + " (type p_t) (portcon tcp 8080 (system_u object_r p_t ((s0) (s0))))"
                       " (allow h_t p_t (tcp_socket (name_connect)))")
    load_policy([str(path)])  # builds the entry
    pol = load_policy([str(path)])
    assert pol.from_cache
    pending = pol.snap.__dict__["_pending"]
    rules = cache._SECTION_OF["rules"]
    assert [p.context.type for p in pol.snap.portcons] == ["p_t"]
    assert rules in pending and cache._SECTION_OF["portcons"] not in pending
    decoded: list[str] = []
    section_values = cache._section_values

    def spy(index: int, blob: bytes) -> dict[str, object]:
        decoded.extend(cache.SECTIONS[index])
        return section_values(index, blob)

    monkeypatch.setattr(cache, "_section_values", spy)
    assert main(["label", "port", "8080/tcp", "--policy", str(path)]) == 0
    assert "p_t" in capsys.readouterr().out
    assert "portcons" in decoded and "rules" not in decoded and "attr_types" not in decoded
    fresh = extract(str(path), pol.snap.sha256)
    assert pol.snap == fresh and fresh == pol.snap  # decodes the rest
    assert not pending and pol.snap.rules == fresh.rules
    assert pol.candidate_rules("tcp_socket", "h_t", "p_t")[0].perms == {"name_connect"}


def test_a_warm_label_imports_only_what_it_reads(compile_cil, own_cache: Path,  # type: ignore[no-untyped-def]
                                                 tmp_path: Path) -> None:
    """The warm path's import budget (issue 13): a cached `label port` in a fresh
    interpreter loads neither setools, nor ``dataclasses`` (inspect, ast: ~9 ms), nor
    OpenSSL's ``_hashlib`` (~3 ms; the cache's digest is the built-in BLAKE2b, the
    policy's sha256 comes from the memo).  The first run, which builds the entry and
    the memo, may load anything."""
    import subprocess
    import sys

    pol = tmp_path / "policy.bin"
    pol.write_bytes(compile_cil(SNIPPET + " (type p_t) (portcon tcp 8080 (system_u object_r p_t"
                                " ((s0) (s0))))").read_bytes())
    argv = ["label", "port", "8080/tcp", "--policy", str(pol)]
    first = ("from selnet.policy import source; source._SETTLED_NS = 0\n"  # written just now
             f"from selnet.cli import main; raise SystemExit(main({argv!r}))")
    warm = (f"import sys; from selnet.cli import main; rc = main({argv!r})\n"
            "print(sorted(m for m in ('setools', 'dataclasses', '_hashlib', 'inspect')"
            " if m in sys.modules))\nraise SystemExit(rc)")
    subprocess.run([sys.executable, "-c", first], check=True, capture_output=True)
    out = subprocess.run([sys.executable, "-c", warm], check=True, capture_output=True,
                         text=True).stdout
    assert "p_t" in out
    assert out.splitlines()[-1] == "[]", out


def test_the_snapshot_names_each_field_once_in_order(compile_cil) -> None:  # type: ignore[no-untyped-def]
    """PolicySnapshot is a slotted class, not a dataclass (the warm path's import budget):
    its field list, annotations and __init__ must name the same fields in the same order,
    and replace() must change what it is given and share the rest."""
    import inspect

    from selnet.policy.snapshot import SNAPSHOT_FIELDS, PolicySnapshot

    assert tuple(PolicySnapshot.__annotations__) == SNAPSHOT_FIELDS
    assert tuple(inspect.signature(PolicySnapshot.__init__).parameters)[1:] == SNAPSHOT_FIELDS
    snap = load_policy([str(compile_cil(SNIPPET))]).snap
    new = snap.replace(booleans={"b": True})
    assert new.booleans == {"b": True} and snap.booleans != new.booleans and new != snap
    assert all(getattr(new, f) is getattr(snap, f) for f in SNAPSHOT_FIELDS if f != "booleans")
    assert snap.replace() == snap
    with pytest.raises(TypeError, match="no field 'bogus'"):
        snap.replace(bogus=1)
