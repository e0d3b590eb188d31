"""A service's network needs, from options or a TOML file: what `selnet generate` grants."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from selnet.errors import InputError
from selnet.kernel.classes import PORT_PROTOCOLS
from selnet.model.labels import is_number

# Named services a spec may ask to reach, as the (port, protocol) pairs they use.
SERVICES: dict[str, tuple[tuple[int, str], ...]] = {
    "dns": ((53, "udp"), (53, "tcp")),
    "http": ((80, "tcp"),),
    "https": ((443, "tcp"),),
    "ntp": ((123, "udp"),),
    "smtp": ((25, "tcp"),),
    "syslog": ((514, "udp"),),
}


@dataclass(frozen=True, slots=True)
class Op:
    operation: str  # bind (a server: bind+listen), connect, send
    port: int
    proto: str

    def __str__(self) -> str:
        return f"{self.operation} {self.port}/{self.proto}"


def _port(text: str, what: str) -> tuple[int, str]:
    num, _, proto = text.strip().partition("/")
    proto = (proto or "tcp").lower()
    if proto not in PORT_PROTOCOLS:
        raise InputError(f"{what} {text!r}: protocol must be one of {', '.join(PORT_PROTOCOLS)}")
    if not is_number(num) or not 1 <= int(num) <= 65535:
        raise InputError(f"{what} {text!r}: not a port number 1-65535")
    return int(num), proto


def parse_ops(binds: list[str], connects: list[str], sends: list[str]) -> list[Op]:
    ops: list[Op] = []
    for b in binds:
        ops.append(Op("bind", *_port(b, "--bind")))
    for c in connects:
        if c.lower() in SERVICES:
            for port, proto in SERVICES[c.lower()]:
                ops.append(Op("connect" if proto != "udp" else "send", port, proto))
        else:
            port, proto = _port(c, "--connect")
            ops.append(Op("connect" if proto != "udp" else "send", port, proto))
    for s in sends:
        port, proto = _port(s, "--send")
        if proto != "udp":
            raise InputError(f"--send {s!r}: a datagram is udp (use --connect for tcp)")
        ops.append(Op("send", port, proto))
    return list(dict.fromkeys(ops))


def read_spec(path: Path) -> list[Op]:
    """``bind = ["8443/tcp"]``, ``connect = ["5432/tcp", "dns"]``, ``send = ["514/udp"]``."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not TOML ({exc})") from exc
    unknown = set(data) - {"bind", "connect", "send"}
    if unknown:
        raise InputError(f"{path}: unknown keys {', '.join(sorted(unknown))} (bind, connect, send)")

    def strings(key: str) -> list[str]:
        got = data.get(key, [])
        if not isinstance(got, list) or not all(isinstance(x, str | int) for x in got):
            raise InputError(f"{path}: {key} must be a list of \"PORT/PROTO\" strings")
        return [str(x) for x in got]

    return parse_ops(strings("bind"), strings("connect"), strings("send"))
