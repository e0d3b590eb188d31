"""Fetch one binary package from a Debian suite, verified, without the host's apt.

Used for kernels of suites the host does not track (Debian 13 "trixie" on a Debian 12
host): the host's apt configuration is never read or changed.  The chain of trust is
apt's own: the suite's InRelease is checked with ``gpgv`` against the Debian archive
keyring, and only its signed text is read; ``main/binary-amd64/Packages.xz`` is fetched
by its SHA256 from that text (the archive's by-hash path, so a mirror update mid-run
cannot mix indices); the package by the SHA256 its Packages stanza gives.  Every file is
kept under the caller's cache directory and verified again before each use: a cached
file that no longer matches is fetched again, never used.  Python standard library only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import lzma
import os
import re
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

MIRROR = os.environ.get("SELNET_DEBIAN_MIRROR", "http://deb.debian.org/debian")
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
ARCH = "amd64"
TIMEOUT = 60  # seconds without data before a download fails


class ArchiveError(RuntimeError):
    """The archive could not be reached or did not verify."""


@dataclass(frozen=True)
class Stanza:
    """One package's entry in a verified Packages index."""

    package: str
    version: str
    filename: str  # pool/main/... relative to the mirror
    sha256: str
    size: int
    depends: str


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def download(url: str, dest: Path, sha256: str | None = None) -> None:
    """URL -> DEST atomically; with SHA256 the file must match it or nothing is written."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=TIMEOUT) as r:
            while chunk := r.read(1 << 20):
                h.update(chunk)
                f.write(chunk)
        if sha256 and h.hexdigest() != sha256:
            raise ArchiveError(f"{url}: SHA256 {h.hexdigest()} is not the index's {sha256}")
        os.replace(tmp, dest)
    except (OSError, urllib.error.URLError) as e:
        raise ArchiveError(f"cannot fetch {url}: {e}") from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def verified_release(path: Path, suite: str) -> str:
    """The signed text of an InRelease file, or ArchiveError.  gpgv writes out only what
    the signatures cover, so nothing outside them is ever read."""
    if not KEYRING.exists():
        raise ArchiveError(f"{KEYRING} missing (install debian-archive-keyring)")
    r = subprocess.run(
        ["gpgv", "--keyring", str(KEYRING), "--status-fd", "2", "--output", "-", str(path)],
        capture_output=True,
    )
    status = r.stderr.decode(errors="replace")
    if r.returncode or "[GNUPG:] VALIDSIG" not in status:
        raise ArchiveError(
            f"{path}: signature does not verify against {KEYRING} (does the keyring hold "
            f"the {suite} key?): {status.strip()[-300:]}"
        )
    text = r.stdout.decode(errors="replace")
    m = re.search(r"^Codename: (\S+)", text, re.M)
    if not m or m.group(1) != suite:
        raise ArchiveError(f"{path}: signed for {m and m.group(1)!r}, not {suite!r}")
    return text


def release_sha256(release: str, name: str) -> tuple[str, int]:
    """(sha256, size) of NAME in the SHA256 section of a signed Release text."""
    sect = release.split("\nSHA256:\n", 1)
    if len(sect) == 2:
        for ln in sect[1].splitlines():
            if not ln.startswith(" "):
                break
            digest, size, fname = ln.split()
            if fname == name:
                return digest, int(size)
    raise ArchiveError(f"Release has no SHA256 for {name}")


class Suite:
    """One Debian suite's main/binary-amd64 index, fetched and verified into DIR."""

    def __init__(self, suite: str, cache: Path) -> None:
        self.suite = suite
        self.dir = cache / "archive" / suite
        self._stanzas: dict[str, Stanza] | None = None

    def release(self) -> str:
        """A fresh InRelease when the mirror answers (it is small); the cached one, verified,
        when it does not (offline reruns keep working on what was verified before)."""
        path = self.dir / "InRelease"
        try:
            download(f"{MIRROR}/dists/{self.suite}/InRelease", path)
        except ArchiveError:
            if not path.exists():
                raise
        return verified_release(path, self.suite)

    def packages(self) -> dict[str, Stanza]:
        if self._stanzas is None:
            name = f"main/binary-{ARCH}/Packages.xz"
            digest, _ = release_sha256(self.release(), name)
            path = self.dir / f"Packages-{digest}.xz"  # by hash: one file per index version
            if not path.exists() or file_sha256(path) != digest:
                by_hash = f"{MIRROR}/dists/{self.suite}/main/binary-{ARCH}/by-hash/SHA256/{digest}"
                download(by_hash, path, digest)
                for old in self.dir.glob("Packages-*.xz"):
                    if old != path:
                        old.unlink()
            self._stanzas = self._kernel_stanzas(path, digest)
        return self._stanzas

    def _kernel_stanzas(self, index: Path, digest: str) -> dict[str, Stanza]:
        """The linux-image stanzas of the verified INDEX, kept beside it: decompressing and
        reading 60 MB takes seconds on a busy machine.  The derived file names the index it
        was read from and has a sha256 sidecar; one that does not verify is derived again."""
        derived = self.dir / f"kernels-{digest}.json"
        side = derived.with_name(derived.name + ".sha256")
        try:
            raw = derived.read_bytes()
            if side.read_text() == hashlib.sha256(raw).hexdigest():
                data = json.loads(raw)
                if data["index"] == digest:
                    return {s["package"]: Stanza(**s) for s in data["stanzas"]}
        except (OSError, ValueError, KeyError, TypeError):
            pass
        stanzas = parse_packages(lzma.decompress(index.read_bytes()).decode())
        raw = json.dumps(
            {"index": digest, "stanzas": [dataclasses.asdict(s) for s in stanzas.values()]}
        ).encode()
        for old in self.dir.glob("kernels-*.json*"):
            old.unlink()
        write_atomic(derived, raw)
        write_atomic(side, hashlib.sha256(raw).hexdigest().encode())
        return stanzas

    def stanza(self, package: str) -> Stanza:
        s = self.packages().get(package)
        if s is None:
            raise ArchiveError(f"{self.suite} main has no package {package}")
        return s

    def fetch(self, package: str, dest_dir: Path) -> tuple[Path, Stanza]:
        """PACKAGE's .deb in DEST_DIR, downloaded unless a copy there matches the index."""
        s = self.stanza(package)
        deb = dest_dir / Path(s.filename).name
        if not (deb.exists() and file_sha256(deb) == s.sha256):
            download(f"{MIRROR}/{s.filename}", deb, s.sha256)
        return deb, s


def write_atomic(path: Path, data: bytes) -> None:
    """PATH holds DATA whole or not at all (another run, or thread, may be reading it);
    the temporary name is per process and thread, as boots and predictions run in threads.
    The standard-library twin of selnet.policy.atomic.write_atomic."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def parse_packages(text: str) -> dict[str, Stanza]:
    """Only the linux-image stanzas: the whole index is 60 MB of text."""
    out: dict[str, Stanza] = {}
    for block in text.split("\n\n"):
        if not block.startswith("Package: linux-image-"):
            continue
        f = dict(re.findall(r"(?m)^([\w-]+): (.*)$", block))
        out[f["Package"]] = Stanza(
            f["Package"], f["Version"], f["Filename"], f["SHA256"], int(f["Size"]),
            f.get("Depends", ""),
        )
    return out
