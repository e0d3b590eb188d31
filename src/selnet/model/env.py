"""The network environment a check sequence depends on: sysctls, labeling, namespaces."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from selnet.errors import InputError
from selnet.policy.snapshot import Context

DEFAULT_LOCAL_PORT_RANGE = (32768, 60999)
DEFAULT_UNPRIVILEGED_PORT_START = 1024

_SYSCTL_ALIASES = {
    "net.ipv4.ip_local_port_range": "ip_local_port_range",
    "ip_local_port_range": "ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start": "ip_unprivileged_port_start",
    "ip_unprivileged_port_start": "ip_unprivileged_port_start",
}


_MAX_DIGITS = 10  # int() of a huge digit string raises (more than 4300 digits)


def _shown(text: str, limit: int = 40) -> str:
    """``repr`` of user input for a one-line message, cut when it is long."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


@dataclass(frozen=True, slots=True)
class NetEnv:
    local_port_range: tuple[int, int] = DEFAULT_LOCAL_PORT_RANGE
    unprivileged_port_start: int = DEFAULT_UNPRIVILEGED_PORT_START
    labeled: str | None = None  # None, "netlabel" or "ipsec": peer labeling active
    peer: Context | None = None  # the peer label; None = the unlabeled initial SID
    secmark: Context | None = None  # SECMARK label of the packets; None = no SECMARK rules
    userns: bool = False  # the netns is owned by a non-initial user namespace
    netif: str | None = None  # the interface packets use; None = lo for loopback, else eth0
    remote: str | None = None  # the remote address seen by a server (per-packet checks)

    def requires_name_bind(self, port: int) -> bool:
        """The condition of check bind.name_bind: only outside the range auto-bind would use."""
        low, high = self.local_port_range
        return port != 0 and (port < self.unprivileged_port_start or port < low or port > high)

    def requires_bind_service(self, port: int) -> bool:
        """inet_port_requires_bind_service: CAP_NET_BIND_SERVICE below the unprivileged start."""
        return port != 0 and port < self.unprivileged_port_start


def parse_sysctls(items: list[str], base: NetEnv | None = None) -> NetEnv:
    env = base or NetEnv()
    lpr = env.local_port_range
    ups = env.unprivileged_port_start
    for item in items:
        key, eq, value = item.partition("=")
        name = _SYSCTL_ALIASES.get(key.strip().replace("/", "."))
        if not eq or name is None:
            raise InputError(
                f"unsupported --sysctl {_shown(item)} (net.ipv4.ip_local_port_range=\"LOW HIGH\" "
                "or net.ipv4.ip_unprivileged_port_start=N)"
            )
        value = value.strip().strip("\"'")
        if name == "ip_local_port_range":
            m = re.fullmatch(r"([0-9]+)\s*[\s,:-]\s*([0-9]+)", value)
            if not m:
                raise InputError(f"ip_local_port_range needs 'LOW HIGH', got {_shown(value)}")
            if len(m.group(1)) > _MAX_DIGITS or len(m.group(2)) > _MAX_DIGITS:
                raise InputError(f"ip_local_port_range {_shown(value)} is not a valid range")
            low, high = int(m.group(1)), int(m.group(2))
            if not (1 <= low <= high <= 65535):
                raise InputError(f"ip_local_port_range {low} {high} is not a valid range")
            lpr = (low, high)
        else:
            if (not (value.isascii() and value.isdigit()) or len(value) > _MAX_DIGITS
                    or int(value) > 65535):
                raise InputError(
                    f"ip_unprivileged_port_start needs 0-65535, got {_shown(value)}")
            ups = int(value)
    return replace(env, local_port_range=lpr, unprivileged_port_start=ups)


def env_for(origin: str, sysctls: list[str] | None) -> NetEnv:
    """The sysctls a command assumes: the live ones for the live policy, else the kernel
    defaults, then the user's ``--sysctl`` overrides."""
    base = parse_sysctls(live_sysctls()) if origin == "live" else NetEnv()
    return parse_sysctls(sysctls or [], base)


def live_sysctls(proc: Path = Path("/proc/sys/net/ipv4")) -> list[str]:
    """The running system's values, for checks against the live policy."""
    out = []
    try:
        out.append("ip_local_port_range=" + (proc / "ip_local_port_range").read_text().strip())
        out.append(
            "ip_unprivileged_port_start="
            + (proc / "ip_unprivileged_port_start").read_text().strip()
        )
    except OSError:
        return []
    return out
