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
    "net.ipv4.ping_group_range": "ping_group_range",
    "ping_group_range": "ping_group_range",
}
GID_MAX = 4294967294  # gid_valid(): (gid_t)-1 is the invalid gid


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
    # labeled IPsec: the context of the SPD entry outgoing flows match (None: none does)
    spd: Context | None = None
    secmark: Context | None = None  # SECMARK label of the packets; None = no SECMARK rules
    userns: bool = False  # the netns is owned by a non-initial user namespace
    netif: str | None = None  # the interface packets use; None = lo for loopback, else eth0
    remote: str | None = None  # the remote address seen by a server (per-packet checks)
    # net.ipv4.ping_group_range; None = not known (the kernel default "1 0" admits nobody)
    ping_group_range: tuple[int, int] | None = None
    gids: tuple[int, ...] = (0,)  # the caller's egid and supplementary groups

    def ping_allowed(self) -> bool | None:
        """ping_init_sock: is the egid or a supplementary group inside ping_group_range?
        None when the range is not known."""
        if self.ping_group_range is None:
            return None
        low, high = self.ping_group_range
        return any(low <= g <= high for g in self.gids)

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
    pgr = env.ping_group_range
    for item in items:
        key, eq, value = item.partition("=")
        name = _SYSCTL_ALIASES.get(key.strip().replace("/", "."))
        if not eq or name is None:
            raise InputError(
                f"unsupported --sysctl {_shown(item)} (net.ipv4.ip_local_port_range=\"LOW HIGH\" "
                "or net.ipv4.ip_unprivileged_port_start=N or net.ipv4.ping_group_range=\"LOW HIGH\")"
            )
        value = value.strip().strip("\"'")
        if name == "ping_group_range":
            m = re.fullmatch(r"([0-9]+)\s+([0-9]+)", value)
            if not m or len(m.group(1)) > _MAX_DIGITS or len(m.group(2)) > _MAX_DIGITS:
                raise InputError(f"ping_group_range needs 'LOW HIGH' (group ids), got {_shown(value)}")
            low, high = int(m.group(1)), int(m.group(2))
            if low > GID_MAX or high > GID_MAX:
                raise InputError(f"ping_group_range {low} {high}: group ids go up to {GID_MAX}")
            # ipv4_ping_group_range: an empty range (high < low) is stored as "1 0"
            pgr = (low, high) if low <= high else (1, 0)
        elif name == "ip_local_port_range":
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
    return replace(env, local_port_range=lpr, unprivileged_port_start=ups, ping_group_range=pgr)


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
