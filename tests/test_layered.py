"""``--policy BASE --policy MODULE...``: CIL, .te and .pp modules layered on a base.

On a binary base a module is applied as an overlay; on a CIL base it is compiled
with the base by secilc.  The overlay must decide exactly like secilc's compile.
"""

from __future__ import annotations

import bz2
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from selnet.cli.main import main
from selnet.decide.chain import evaluate
from selnet.decide.decision import Decider
from selnet.errors import InputError, PolicyError, ToolMissingError
from selnet.model.plan import Scenario, parse_endpoint
from selnet.policy import modules as modules_mod
from selnet.policy.index import Policy
from selnet.policy.loader import load_policy
from selnet.policy.modules import DEVEL_MAKEFILE, LayeredPolicy
from selnet.policy.overlay import AddPortcon, SetBoolean
from selnet.policy.source import cache_dir, compile_cil, example_policy_path
from tests.conftest import ROOT
from tests.test_overlay import compare

MODULES = ROOT / "tests" / "data" / "modules"
MOD_CIL = MODULES / "myapp.cil"
MOD_TE = MODULES / "myapp.te"

needs_devel = pytest.mark.skipif(
    not DEVEL_MAKEFILE.exists() or shutil.which("make") is None,
    reason="selinux-policy-dev (the refpolicy devel Makefile) is not installed",
)


def listen(policy: Policy, domain: str, port: int) -> bool:
    sc = Scenario("listen", policy.context_for_domain(domain), parse_endpoint(f"0.0.0.0:{port}"))
    return evaluate(policy, sc, policy.bool_values()).allowed


def connect(policy: Policy, domain: str, port: int, bools: dict[str, bool] | None = None) -> bool:
    sc = Scenario("connect", policy.context_for_domain(domain),
                  parse_endpoint(f"127.0.0.1:{port}"))
    return evaluate(policy, sc, {**policy.bool_values(), **(bools or {})}).allowed


def name_bind(policy: Policy, domain: str, port_type: str) -> bool:
    d = Decider(policy)
    return d.decide(policy.context_for_domain(domain), policy.object_context(port_type),
                    "tcp_socket", "name_bind").allowed


def test_cil_module_on_the_reference_policy(refpolicy_standard: Path) -> None:
    base = load_policy([str(refpolicy_standard)])
    pol = load_policy([str(refpolicy_standard), str(MOD_CIL)])
    assert isinstance(pol, LayeredPolicy) and not pol.exact
    assert pol.base.snap.sha256 == base.snap.sha256 and pol.from_cache  # the cached base
    assert "myapp_t" not in base.domains() and "myapp_t" in pol.domains()
    assert listen(pol, "myapp_t", 7777)            # its own port, by its portcon
    assert not listen(pol, "myapp_t", 7778)        # unreserved_port_t: no rule
    assert connect(pol, "myapp_t", 7777)
    assert not connect(pol, "myapp_t", 5432)       # only under its boolean
    assert connect(pol, "myapp_t", 5432, {"myapp_can_connect": True})
    assert pol.bool_values()["myapp_can_connect"] is False
    # The rest of the policy is unchanged: httpd_t decides as before.
    for port in (80, 7777, 5432):
        assert listen(pol, "httpd_t", port) == (listen(base, "httpd_t", port) and port != 7777)
    assert pol.unapplied == ()
    text = pol.describe()
    assert text.startswith(f"{refpolicy_standard} (sha256 {base.snap.sha256[:12]}) with modules")
    assert str(MOD_CIL) in text
    prov = pol.provenance()
    assert prov["modules"] == [{"path": str(MOD_CIL), "kind": "cil",
                                "sha256": pol.modules[0].sha256}]
    # Later changes keep the modules in the description.
    more = pol.with_changes(SetBoolean("myapp_can_connect", True))
    assert isinstance(more, LayeredPolicy) and connect(more, "myapp_t", 5432)
    assert more.describe().endswith("and 1 change: setsebool -P myapp_can_connect on")


@needs_devel
def test_te_and_pp_modules_on_the_reference_policy(refpolicy_standard: Path, tmp_path: Path) -> None:
    te = load_policy([str(refpolicy_standard), str(MOD_TE)])
    assert isinstance(te, LayeredPolicy) and te.modules[0].kind == "te"
    assert name_bind(te, "myapp_t", "myapp_port_t")
    assert not name_bind(te, "myapp_t", "http_port_t")
    assert not listen(te, "myapp_t", 7777)  # no portcon in the .te: unreserved_port_t
    labeled = te.with_changes(AddPortcon("tcp", 7777, 7777, "myapp_port_t"))
    assert listen(labeled, "myapp_t", 7777)
    assert labeled.describe().count("semanage port -a") == 1
    # The Makefile's file, process and fd rules are listed, never dropped; none is networking.
    assert te.unapplied and not any(u.matters for u in te.unapplied)
    assert all(str(u.module) == str(MOD_TE) for u in te.unapplied)
    assert any("class file" in u.describe() for u in te.unapplied)
    # The same module as a .pp, plain and bzip2-compressed as Debian ships them.
    work = tmp_path / "build"
    work.mkdir()
    for suffix in (".te", ".if", ".fc"):
        shutil.copy(MOD_TE.with_suffix(suffix), work)
    subprocess.run(["make", "-f", str(DEVEL_MAKEFILE), "myapp.pp"], cwd=work, check=True,
                   capture_output=True)
    pp = work / "myapp.pp"
    ppbz = tmp_path / "myapp.pp.bz2"
    ppbz.write_bytes(bz2.compress(pp.read_bytes()))
    for path in (pp, ppbz):
        pol = load_policy([str(refpolicy_standard), str(path)])
        assert isinstance(pol, LayeredPolicy) and pol.modules[0].kind == "pp"
        assert pol.snap.type_attrs == te.snap.type_attrs
        assert pol.snap.rules == te.snap.rules
        assert [u.statement for u in pol.unapplied] == [u.statement for u in te.unapplied]
    assert pol.modules[0].cil.parent == cache_dir() / "modules"


@pytest.fixture(scope="module")
def example_binary() -> Path:
    return compile_cil([example_policy_path()], origin="example").binary


def test_overlay_decides_like_secilc_on_the_example(example_binary: Path, tmp_path: Path) -> None:
    # The example's any_type is (all): the binary stores it expanded, so a new type
    # joins it only when the module says so (docs/overlay.md, "not supported").
    mod = tmp_path / "myapp.cil"
    mod.write_text(MOD_CIL.read_text() + "(typeattributeset any_type (myapp_t myapp_port_t))\n")
    exact = load_policy([str(example_policy_path()), str(mod)])  # all CIL: secilc
    layered = load_policy([str(example_binary), str(mod)])       # binary + overlay
    assert isinstance(layered, LayeredPolicy) and not isinstance(exact, LayeredPolicy)
    assert layered.unapplied == ()
    n = compare(layered, exact, ("myapp_t", "web_t", "db_t", "admin_t"))
    assert n > 5000
    assert listen(layered, "myapp_t", 7777) and not listen(layered, "myapp_t", 8080)


def test_known_limit_expression_attributes(example_binary: Path) -> None:
    exact = load_policy([str(example_policy_path()), str(MOD_CIL)])
    layered = load_policy([str(example_binary), str(MOD_CIL)])
    args = (exact.context_for_domain("kernel_t"), exact.object_context("myapp_port_t"),
            "tcp_socket", "name_bind")
    assert Decider(exact).decide(*args).allowed  # kernel_t -> any_type, which is (all)
    assert not Decider(layered).decide(*args).allowed


def test_pp_module_on_a_cil_base_compiles_with_secilc(tmp_path: Path) -> None:
    te = tmp_path / "exmod.te"
    te.write_text("module exmod 1.0;\n"
                  "require { type web_t; class tcp_socket { name_bind }; }\n"
                  "type exmod_port_t;\n"
                  "allow web_t exmod_port_t:tcp_socket name_bind;\n")
    mod, pp = tmp_path / "exmod.mod", tmp_path / "exmod.pp"
    subprocess.run(["checkmodule", "-M", "-m", "-o", str(mod), str(te)], check=True,
                   capture_output=True)
    subprocess.run(["semodule_package", "-o", str(pp), "-m", str(mod)], check=True,
                   capture_output=True)
    pol = load_policy([str(example_policy_path()), str(pp)])
    assert isinstance(pol, LayeredPolicy) and pol.exact and pol.unapplied == ()
    assert pol.source.inputs == (example_policy_path(), pp)
    assert "compiled together by secilc" in pol.describe()
    assert name_bind(pol, "web_t", "exmod_port_t")


def test_no_index_entry_for_the_combination(example_binary: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    load_policy([str(example_binary)])
    index = tmp_path / "selnet" / "index"
    before = sorted(index.iterdir())
    pol = load_policy([str(example_binary), str(MOD_CIL)])
    assert pol.from_cache
    assert sorted(index.iterdir()) == before


def test_unknown_names_in_a_module(example_binary: Path) -> None:
    with pytest.raises(InputError) as err:
        load_policy([str(example_binary), str(MODULES / "unknown.cil")])
    msg = str(err.value)
    assert "\n" not in msg and "unknown.cil" in msg and "no_such_port_t" in msg


@needs_devel
def test_te_that_does_not_compile(example_binary: Path, tmp_path: Path) -> None:
    bad = tmp_path / "broken.te"
    bad.write_text("policy_module(broken, 1.0)\ntype broken_t\n")
    with pytest.raises(PolicyError, match=r"broken.te does not compile: .*ERROR"):
        load_policy([str(example_binary), str(bad)])


def test_missing_converter(example_binary: Path, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    pp = tmp_path / "x.pp"
    pp.write_bytes(bytes.fromhex("8fff7cf9") + b"\0" * 16)
    monkeypatch.setattr(modules_mod, "PP_TOOL", tmp_path / "no-pp")
    with pytest.raises(ToolMissingError, match="policycoreutils") as err:
        load_policy([str(example_binary), str(pp)])
    assert err.value.exit_code == 4


def test_cli(refpolicy_standard: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--policy", str(refpolicy_standard)]
    assert main(["connect", "myapp_t", "127.0.0.1:7777", *base, "--policy", str(MOD_CIL)]) == 0
    assert main(["connect", "myapp_t", "127.0.0.1:5432", *base, "--policy", str(MOD_CIL)]) == 1
    capsys.readouterr()
    rc = main(["connect", "myapp_t", "127.0.0.1:5432", *base,
               "--policy", str(MODULES / "unknown.cil")])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and "no_such_port_t" in err


# -- --no-cache: nothing written outside a scratch directory that is removed ------------
def _exmod_pp(tmp_path: Path) -> Path:
    """A .pp built by checkmodule and semodule_package: web_t may bind exmod_port_t."""
    te = tmp_path / "exmod.te"
    te.write_text("module exmod 1.0;\n"
                  "require { type web_t; class tcp_socket { name_bind }; }\n"
                  "type exmod_port_t;\n"
                  "allow web_t exmod_port_t:tcp_socket name_bind;\n")
    mod, pp = tmp_path / "exmod.mod", tmp_path / "exmod.pp"
    subprocess.run(["checkmodule", "-M", "-m", "-o", str(mod), str(te)], check=True,
                   capture_output=True)
    subprocess.run(["semodule_package", "-o", str(pp), "-m", str(mod)], check=True,
                   capture_output=True)
    return pp


@pytest.fixture()
def empty_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(XDG_CACHE_HOME, the temporary directory), both empty; tempfile and the tools
    selnet runs (TMPDIR) use the second."""
    xdg, tmp = tmp_path / "xdg", tmp_path / "tmp"
    xdg.mkdir(mode=0o700)
    tmp.mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr("tempfile.tempdir", str(tmp))
    return xdg, tmp


def _empty(*dirs: Path) -> bool:
    return all(list(d.iterdir()) == [] for d in dirs)


def test_no_cache_pp_module_writes_nothing(example_binary: Path, tmp_path: Path,
                                           empty_dirs: tuple[Path, Path],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    pp = _exmod_pp(tmp_path)
    # On a CIL base (compiled with secilc, with the cil_gen_require declaration) and on a
    # binary base (the overlay): the module's answer, and nothing left anywhere.
    for base in (example_policy_path(), example_binary):
        pol = load_policy([str(base), str(pp)], use_cache=False)
        assert isinstance(pol, LayeredPolicy) and pol.exact == (base.suffix == ".cil")
        assert name_bind(pol, "web_t", "exmod_port_t")
        assert not name_bind(pol, "db_t", "exmod_port_t")
        assert pol.modules[0].scratch and not pol.modules[0].cil.exists()
        assert _empty(*empty_dirs), [list(d.iterdir()) for d in empty_dirs]
        rc = main(["port", "--type", "exmod_port_t", "--policy", str(base), "--policy", str(pp),
                   "--no-cache", "--json"])
        out = json.loads(capsys.readouterr().out)
        assert rc == 0
        assert [m["path"] for m in out["policy"]["modules"]] == [str(pp)]
        assert _empty(*empty_dirs)
    # The same calls with the cache do write it: the test would see a write.
    load_policy([str(example_binary), str(pp)])
    assert list((empty_dirs[0] / "selnet" / "modules").glob("*.cil"))


@needs_devel
def test_no_cache_te_module_writes_nothing(refpolicy_standard: Path,
                                           empty_dirs: tuple[Path, Path]) -> None:
    te = load_policy([str(refpolicy_standard), str(MOD_TE)], use_cache=False)
    assert isinstance(te, LayeredPolicy) and te.modules[0].kind == "te"
    assert name_bind(te, "myapp_t", "myapp_port_t")
    assert not name_bind(te, "myapp_t", "http_port_t")
    assert _empty(*empty_dirs), [list(d.iterdir()) for d in empty_dirs]


def test_a_damaged_converted_module_is_converted_again(example_binary: Path, tmp_path: Path,
                                                       empty_dirs: tuple[Path, Path]) -> None:
    pp = _exmod_pp(tmp_path)
    first = load_policy([str(example_binary), str(pp)])
    assert isinstance(first, LayeredPolicy)
    entry = first.modules[0].cil
    assert entry.parent == empty_dirs[0] / "selnet" / "modules" and not first.modules[0].scratch
    good = entry.read_bytes()
    # The CIL edited behind its header, another module's CIL, a truncated entry: each
    # would change the answer (or fail) if it were trusted.
    damaged = [good.replace(b"exmod_port_t", b"nothere_port_t", 1),
               b"; selnet-module v1 " + b"0" * 64 + b"\n" + MOD_CIL.read_bytes(),
               good[: len(good) // 2]]
    for data in damaged:
        entry.write_bytes(data)
        again = load_policy([str(example_binary), str(pp)])
        assert name_bind(again, "web_t", "exmod_port_t")
        assert entry.read_bytes() == good
