"""selnet.verify.archive and the kernel package handling of selnet.verify.build.

A Debian-shaped mirror on loopback, signed by a key made for the test, stands in for the
archive: the tests check that only what verifies is ever used, and that a damaged cache is
fetched again rather than trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import lzma
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from selnet.verify import archive, build

SUITE = "testsuite"
KVER = "9.9.9+test-amd64"


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _stanza(pkg: str, version: str, filename: str, data: bytes, depends: str = "") -> str:
    dep = f"Depends: {depends}\n" if depends else ""
    return (
        f"Package: {pkg}\nVersion: {version}\nArchitecture: amd64\n{dep}"
        f"Filename: {filename}\nSize: {len(data)}\nSHA256: {_sha(data)}\n\n"
    )


class Mirror:
    """dists/SUITE/InRelease (clearsigned), Packages.xz by hash, one pool .deb."""

    def __init__(self, root: Path, gnupg: Path) -> None:
        self.root, self.gnupg = root, gnupg
        self.deb = b"not really a deb, only its hash matters here" * 100
        self.deb_path = f"pool/main/l/linux-image-{KVER}_9.9.9-1_amd64.deb"
        packages = (
            _stanza("bash", "5.2-1", "pool/main/b/bash.deb", b"x")
            + _stanza("linux-image-amd64", "9.9.9-1", "pool/main/l/meta.deb", b"m",
                      f"linux-image-{KVER} (= 9.9.9-1)")
            + _stanza(f"linux-image-{KVER}", "9.9.9-1", self.deb_path, self.deb, "kmod")
        )
        self.packages_xz = lzma.compress(packages.encode())
        self.write(root)

    def write(self, root: Path, codename: str = SUITE) -> None:
        d = root / "dists" / SUITE
        bh = d / "main/binary-amd64/by-hash/SHA256"
        bh.mkdir(parents=True, exist_ok=True)
        (bh / _sha(self.packages_xz)).write_bytes(self.packages_xz)
        (root / self.deb_path).parent.mkdir(parents=True, exist_ok=True)
        (root / self.deb_path).write_bytes(self.deb)
        release = (
            f"Origin: Test\nCodename: {codename}\nSHA256:\n"
            f" {'0' * 64} 12 main/binary-amd64/Packages\n"
            f" {_sha(self.packages_xz)} {len(self.packages_xz)} main/binary-amd64/Packages.xz\n"
        )
        (d / "Release").write_text(release)
        (d / "InRelease").unlink(missing_ok=True)
        subprocess.run(
            ["gpg", "--batch", "--yes", "--homedir", str(self.gnupg), "--pinentry-mode",
             "loopback", "--passphrase", "", "--clearsign", "-o", str(d / "InRelease"),
             str(d / "Release")],
            check=True, capture_output=True,
        )


@pytest.fixture(scope="module")
def signing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(GNUPGHOME holding a fresh signing key, a keyring file with only its public key)."""
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    gpg = ["gpg", "--batch", "--homedir", str(home)]
    subprocess.run([*gpg, "--passphrase", "", "--quick-gen-key", "selnet test archive",
                    "ed25519", "sign", "never"], check=True, capture_output=True)
    keyring = home / "keyring.gpg"
    keyring.write_bytes(subprocess.run([*gpg, "--export"], check=True, capture_output=True).stdout)
    yield home, keyring
    # the agent gpg started for this home (and only that one)
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True)


@contextlib.contextmanager
def serve(root: Path) -> Iterator[str]:
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(root))  # noqa: E731
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None  # type: ignore[method-assign]
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, args=(0.02,), daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def mirror(tmp_path: Path, signing: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
           ) -> Iterator[Mirror]:
    home, keyring = signing
    m = Mirror(tmp_path / "mirror", home)
    with serve(m.root) as url:
        monkeypatch.setattr(archive, "MIRROR", url)
        monkeypatch.setattr(archive, "KEYRING", keyring)
        yield m


def test_fetch_verifies_each_step_and_refetches_a_damaged_cache(mirror: Mirror, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    suite = archive.Suite(SUITE, cache)
    meta = suite.stanza("linux-image-amd64")
    assert meta.depends == f"linux-image-{KVER} (= 9.9.9-1)"
    assert "bash" not in suite.packages()  # only the kernel stanzas are kept
    deb, st = suite.fetch(f"linux-image-{KVER}", cache / "k")
    assert deb.read_bytes() == mirror.deb and st.sha256 == _sha(mirror.deb)
    # a damaged cached copy is never used: the next fetch replaces it
    deb.write_bytes(b"damaged")
    deb2, _ = archive.Suite(SUITE, cache).fetch(f"linux-image-{KVER}", cache / "k")
    assert deb2 == deb and deb.read_bytes() == mirror.deb
    # so is a damaged cached index, or the kernel stanzas read from it
    (idx,) = (cache / "archive" / SUITE).glob("Packages-*.xz")
    idx.write_bytes(b"junk")
    assert archive.Suite(SUITE, cache).stanza(f"linux-image-{KVER}").version == "9.9.9-1"
    (derived,) = (cache / "archive" / SUITE).glob("kernels-*.json")
    derived.write_text(derived.read_text().replace(_sha(mirror.deb), "0" * 64))
    assert archive.Suite(SUITE, cache).stanza(f"linux-image-{KVER}").sha256 == _sha(mirror.deb)


def test_a_package_that_does_not_match_its_index_is_not_written(mirror: Mirror, tmp_path: Path) -> None:
    (mirror.root / mirror.deb_path).write_bytes(b"tampered in the pool")
    with pytest.raises(archive.ArchiveError, match="SHA256"):
        archive.Suite(SUITE, tmp_path).fetch(f"linux-image-{KVER}", tmp_path / "k")
    assert list((tmp_path / "k").iterdir()) == []


def test_release_must_verify_and_name_its_suite(mirror: Mirror, tmp_path: Path) -> None:
    inrel = mirror.root / "dists" / SUITE / "InRelease"
    good = inrel.read_text()
    inrel.write_text(good.replace("Origin: Test", "Origin: Tset"))  # signed text altered
    with pytest.raises(archive.ArchiveError, match="does not verify"):
        archive.Suite(SUITE, tmp_path / "a").release()
    mirror.write(mirror.root, codename="othersuite")  # validly signed, for another suite
    with pytest.raises(archive.ArchiveError, match="not 'testsuite'"):
        archive.Suite(SUITE, tmp_path / "b").release()


def test_offline_uses_the_cached_release_only_if_it_still_verifies(
    signing: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, keyring = signing
    m = Mirror(tmp_path / "mirror", home)
    monkeypatch.setattr(archive, "KEYRING", keyring)
    with serve(m.root) as url:
        monkeypatch.setattr(archive, "MIRROR", url)
        archive.Suite(SUITE, tmp_path / "c").packages()
    # the server is gone: the verified cache answers ...
    assert archive.Suite(SUITE, tmp_path / "c").stanza("linux-image-amd64").version == "9.9.9-1"
    # ... but not once it has been tampered with
    cached = tmp_path / "c" / "archive" / SUITE / "InRelease"
    cached.write_text(cached.read_text().replace("Codename", "Codenane"))
    with pytest.raises(archive.ArchiveError, match="does not verify"):
        archive.Suite(SUITE, tmp_path / "c").release()


def test_release_sha256_reads_only_the_sha256_section() -> None:
    text = "MD5Sum:\n aaaa 1 main/x\nSHA256:\n bbbb 2 main/x\n cccc 3 main/y\nOther: 1\n"
    assert archive.release_sha256(text, "main/y") == ("cccc", 3)
    with pytest.raises(archive.ArchiveError):
        archive.release_sha256(text, "main/z")


def _ko(depends: str) -> bytes:
    return b"\x7fELF...\0license=GPL\0depends=" + depends.encode() + b"\0vermagic=x\0"


def test_modules_compressed_builtin_and_merged(tmp_path: Path) -> None:
    mods = tmp_path / "lib/modules/9.9/kernel"
    (mods / "net").mkdir(parents=True)
    (mods / "lib").mkdir()
    (mods / "lib/crc-a.ko").write_bytes(_ko(""))
    (mods / "net/proto.ko.xz").write_bytes(lzma.compress(_ko("crc-a,tun")))
    (mods / "net/nf_tables.ko.xz").write_bytes(lzma.compress(_ko("proto")))
    (mods.parent / "modules.builtin").write_text("kernel/net/tun.ko\n")
    order = build.module_order(mods, ["proto", "nft_objref"])
    # tun is built in, nft_objref is inside nf_tables; dependencies come first
    assert [n for n, _ in order] == ["crc_a", "proto", "nf_tables"]
    assert build.module_bytes(order[1][1]) == _ko("crc-a,tun")  # what busybox insmod can load
    with pytest.raises(RuntimeError, match="neither"):
        build.module_order(mods, ["absent"])


def test_kernel_release_and_file_check(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    (root / "boot").mkdir(parents=True)
    f = root / "boot" / "vmlinuz-x"
    f.write_bytes(b"kernel image")
    k = build.Kernel("6.12.117+deb13-amd64", "linux-image-6.12.117+deb13-amd64 6.12.117-1",
                     tmp_path / "vmlinux", root, "trixie",
                     {"boot/vmlinuz-x": hashlib.md5(b"kernel image").hexdigest()}, root)
    assert k.release == "6.12.117"
    assert build.Kernel("6.1.0-57-amd64", "linux-image-6.1.0-57-amd64 6.1.192-3",
                        Path(), Path()).release == "6.1.192"
    k.check_file(f)
    f.write_bytes(b"kernel imagE")
    with pytest.raises(RuntimeError, match="not the file"):
        k.check_file(f)
    os.unlink(f)


def test_sealed_cache_entries(tmp_path: Path) -> None:
    out = tmp_path / "base-x.cpio.gz"
    assert not build.sealed(out)
    tmp = tmp_path / ".staging"
    tmp.write_bytes(b"cpio bytes")
    build.seal(tmp, out)
    assert build.sealed(out) and not tmp.exists()
    out.write_bytes(b"cpio bytez")  # damaged after it was written
    assert not build.sealed(out)
    out.with_name(out.name + ".sha256").unlink()  # or written by a version without sidecars
    out.write_bytes(b"cpio bytes")
    assert not build.sealed(out)
