"""Shared fixtures: small CIL policies compiled with secilc, and the full reference policy."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs the fuzz tests with a fixed seed: a red CI must be reproducible; local
# runs keep exploring (and remember failures in .hypothesis/).
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

ROOT = Path(__file__).resolve().parent.parent
BASE_CIL = ROOT / "tests" / "policies" / "base.cil"
EXAMPLE_CIL = ROOT / "src" / "selnet" / "data" / "example.cil"

# The reference policies (and the oracle's verdict cache) live in a stable per-machine
# cache of the real user, ${XDG_CACHE_HOME:-~/.cache}/selnet-refpolicy, as
# scripts/build-refpolicy defaults to; selnet's own index cache goes to a
# per-session directory so tests never see a stale user cache.  The real path is
# computed once, before XDG_CACHE_HOME is overridden, and handed down through
# REFPOLICY_ENV: xdist workers (and any subprocess) inherit the overridden
# XDG_CACHE_HOME, so they must not derive it again.  scripts/test sets it too.
REFPOLICY_ENV = "SELNET_TEST_REFPOLICY_DIR"
if not os.environ.get(REFPOLICY_ENV):
    _xdg = os.environ.get("XDG_CACHE_HOME", "")
    _real_cache = Path(_xdg) if os.path.isabs(_xdg) else Path.home() / ".cache"
    os.environ[REFPOLICY_ENV] = str(_real_cache / "selnet-refpolicy")
REFPOLICY_DIR = Path(os.environ[REFPOLICY_ENV])
# One session directory for the whole run: xdist workers use their controller's
# (selnet's cache writes are atomic), so a policy index is built once per run, not
# once per worker; its creator removes it.
_SESSION_ENV = "SELNET_TEST_SESSION_CACHE"
_OWN_SESSION_CACHE = not (os.environ.get("PYTEST_XDIST_WORKER") and os.environ.get(_SESSION_ENV))
if _OWN_SESSION_CACHE:
    os.environ[_SESSION_ENV] = tempfile.mkdtemp(prefix="selnet-test-cache-")
    # The index of every test policy, kept across runs: entries are keyed by the policy's
    # sha256 and the snapshot format and verified on read (policy/cache.py), so a stale one
    # cannot be used; only selnet's index directory is carried over, nothing else.
    _kept = REFPOLICY_DIR / "index-cache"
    with contextlib.suppress(OSError):
        _kept.mkdir(parents=True, exist_ok=True, mode=0o700)
        (Path(os.environ[_SESSION_ENV]) / "selnet").mkdir(mode=0o700)
        os.symlink(_kept, Path(os.environ[_SESSION_ENV]) / "selnet" / "index")
_SESSION_CACHE = Path(os.environ[_SESSION_ENV])
os.environ["XDG_CACHE_HOME"] = str(_SESSION_CACHE)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _OWN_SESSION_CACHE:
        shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The long tests (the oracle shards) first, otherwise in collection order: the
    # workers then share them out early and finish together on the short ones.
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)


@pytest.fixture(autouse=True)
def _caches_allowed_again() -> Iterator[None]:
    """``--no-cache`` holds for the rest of its process (load_policy sets it): a test
    running ``main([..., "--no-cache"])`` must not leave the next test without caches
    (the interface index tests then found nothing written, in some orders)."""
    yield
    from selnet.policy.source import allow_caches

    allow_caches(True)


CompileCil = Callable[..., Path]


@pytest.fixture(scope="session")
def compile_cil(tmp_path_factory: pytest.TempPathFactory) -> CompileCil:
    """compile_cil(snippet, mls=False, base=True) -> path of a binary policy."""
    out_dir = tmp_path_factory.mktemp("cil")

    # Compiled binaries are also kept across runs in the stable per-machine directory
    # (keyed by the inputs and the secilc binary, checked by a sha256 sidecar), and each
    # test gets its own copy: a test may mutate its policy file.
    keep = REFPOLICY_DIR / "cil-cache"
    secilc = shutil.which("secilc") or "secilc"
    try:
        st = os.stat(secilc)
        tool = f"{secilc}:{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        tool = secilc
    base_text = BASE_CIL.read_text()

    def compile_(snippet: str, mls: bool = False, base: bool = True) -> Path:
        key = hashlib.sha256(f"{mls}{base}\0{snippet}".encode()).hexdigest()[:16]
        out = out_dir / f"{key}.policy"
        if out.exists():
            return out
        full = hashlib.sha256(f"{tool}\0{mls}{base}\0{base_text if base else ''}\0"
                              f"{snippet}".encode()).hexdigest()
        kept, sidecar = keep / f"{full}.policy", keep / f"{full}.sha256"
        try:
            data = kept.read_bytes()
            if hashlib.sha256(data).hexdigest() == sidecar.read_text().strip():
                out.write_bytes(data)
                return out
        except OSError:
            pass
        src = out_dir / f"{key}.cil"
        src.write_text(snippet)
        files = [str(BASE_CIL), str(src)] if base else [str(src)]
        proc = subprocess.run(
            ["secilc", "-M", "true" if mls else "false", "-o", str(out), "-f", os.devnull, *files],
            capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            raise AssertionError(f"secilc failed:\n{proc.stderr}\n{snippet}")
        data = out.read_bytes()
        try:  # atomic: workers compile the same snippets at the same time
            keep.mkdir(parents=True, exist_ok=True)
            tmp = keep / f".{full}.{os.getpid()}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, kept)
            sidecar.with_name(f".{full}.{os.getpid()}.sha").write_text(
                hashlib.sha256(data).hexdigest())
            os.replace(sidecar.with_name(f".{full}.{os.getpid()}.sha"), sidecar)
        except OSError:
            pass  # a read-only cache only costs speed
        return out

    return compile_


@pytest.fixture(scope="session")
def load() -> Callable[[Path], object]:
    from selnet.policy.loader import load_policy

    def load_(path: Path) -> object:
        return load_policy([str(path)])

    return load_


def _refpolicy(flavour: str) -> Path:
    # Idempotent and quick once built (scripts/test builds every flavour before
    # pytest); serialised by build-refpolicy's own lock when workers race.
    script = ROOT / "scripts" / "build-refpolicy"
    proc = subprocess.run(
        [str(script), str(REFPOLICY_DIR)], capture_output=True, text=True, check=False,
        env={**os.environ, "TYPES": flavour},
    )
    if proc.returncode != 0:
        pytest.skip(f"reference policy unavailable: {proc.stderr.strip()[-200:]}")
    for line in proc.stdout.splitlines():
        name, _, path = line.partition(" ")
        if name == flavour:
            return Path(path)
    pytest.skip("reference policy build printed no path")


@pytest.fixture(scope="session")
def refpolicy_standard() -> Path:
    return _refpolicy("standard")


@pytest.fixture(scope="session")
def refpolicy_mcs() -> Path:
    return _refpolicy("mcs")


@pytest.fixture(scope="session")
def debian_local() -> Path:
    """Debian's modular policy plus local semanage port/node records (build-refpolicy)."""
    return _refpolicy("debian-local")


@pytest.fixture(scope="session")
def fixture_cache_dir() -> Path:
    """The stable per-machine directory of the reference policies and derived caches."""
    REFPOLICY_DIR.mkdir(parents=True, exist_ok=True)
    return REFPOLICY_DIR
