"""The conformance scenario format (selnet.verify.scenarios): booleans, labeled IPsec."""

from __future__ import annotations

from typing import Any

import pytest

from selnet.verify.scenarios import Scenario, guest_script, validate

POLICIES: dict[str, Any] = {"cil-ipsec": {}}
IPSEC = {"labeled": "ipsec", "ipsec": "system_u:object_r:spd_t",
         "peer": "system_u:system_r:ippeer_t"}


def _scenario(**kw: Any) -> Scenario:
    s = Scenario(**{"name": "s", "policy": "cil-ipsec", "op": "connect", "domain": "ipc_t",
                    "addr": "127.0.0.1:8080/tcp", **kw})
    validate(s, POLICIES)
    return s


def test_booleans_on_and_off() -> None:
    s = _scenario(bools={"a": "off", "b": "on", "c": False})
    assert s.bools == {"a": False, "b": True, "c": False}
    assert "--bool" in s.selnet_argv("P") and "a=off" in s.selnet_argv("P")
    assert "bool_set a 0" in guest_script(s)
    with pytest.raises(ValueError, match="on, off"):
        _scenario(bools={"a": "no"})


def test_labeled_ipsec_scenario() -> None:
    s = _scenario(**IPSEC)
    argv = s.selnet_argv("P")
    assert argv[argv.index("--labeled") + 1] == "ipsec"
    assert argv[argv.index("--spd") + 1] == "system_u:object_r:spd_t"
    script = guest_script(s)
    # an SA for the test socket's label and one for the peer's, which runs in its own context
    assert ("ipsec_on system_u:object_r:spd_t system_u:system_r:ipc_t "
            "system_u:system_r:ippeer_t") in script
    assert "ctx=system_u:system_r:ippeer_t sock=tcp" in script and "ipsec_off" in script
    for bad in ({"labeled": "ipsec", "peer": IPSEC["peer"]},      # no SPD context
                {"labeled": "ipsec", "ipsec": IPSEC["ipsec"]},    # no peer context
                {"ipsec": IPSEC["ipsec"]}):                       # SPD without labeled ipsec
        with pytest.raises(ValueError):
            _scenario(**bad)


@pytest.mark.parametrize(("labeled", "setup"), [
    ("cipso", "cipso_on pass"), ("cipso-local", "cipso_on local"), ("calipso", "calipso_on")])
def test_netlabel_cipso_calipso_scenarios(labeled: str, setup: str) -> None:
    # selnet is asked about NetLabel with the label the test socket receives; the guest
    # configures the protocol, and restores the boot mapping afterwards
    s = _scenario(labeled=labeled, peer="system_u:object_r:netlabel_peer_t:s0")
    argv = s.selnet_argv("P")
    assert argv[argv.index("--labeled") + 1] == "netlabel"
    assert argv[argv.index("--peer") + 1] == "system_u:object_r:netlabel_peer_t:s0"
    lines = guest_script(s).splitlines()
    assert setup in lines and "labeled_off" in lines
    assert lines.index(setup) < lines.index("labeled_off")
    with pytest.raises(ValueError, match="labeled must be"):
        _scenario(labeled="cipso6")
