"""`teredoctl client --tun` without a network: argument checks, the
privilege check and its one-line error, the tun ioctl's error, and which
interfaces the stale-interface cleaner removes or refuses (the lab test
tests/lab/test_lab_tun.py runs the real thing as root)."""
import errno

import pytest

from teredoctl import cli, tun

SERVER = "198.51.100.10"


def parse(*extra):
    return cli.build_parser().parse_args(["client", "--server", SERVER, "--tun"] + list(extra))


def run_main(capsys, *extra):
    rc = cli.main(["client", "--server", SERVER, "--tun"] + list(extra))
    return rc, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("extra,words", [
    (["--app", "x.py"], "use ping -6 and the system's sockets"),
    (["--ping", "2001:db8::1"], "use ping -6"),
    (["--ifname", "a-name-that-is-too-long"], "--ifname must be 1..15"),
    (["--sunset-probe", "2001:0:c633:640a::1"], "native IPv6 address, not a Teredo one"),
    (["--sunset-probe", "not-an-address"], "--sunset-probe"),
    (["--sunset-interval", "1"], "--sunset-interval must be 5"),
])
def test_bad_arguments_are_one_line_errors(capsys, extra, words):
    rc, err = run_main(capsys, *extra)
    assert rc == 1 and len(err) == 1 and err[0].startswith("teredoctl: ") and words in err[0], err


def test_without_privileges_one_line_says_what_is_needed(capsys, monkeypatch):
    monkeypatch.setattr(tun.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(tun, "_caps", lambda field: 0)
    rc, err = run_main(capsys)
    assert rc == 1 and err == ["teredoctl: --tun needs root or CAP_NET_ADMIN (to create the tun "
                               "interface teredo and set its addresses and routes): run it with sudo"]


def test_net_admin_must_be_ambient_for_the_ip_commands(monkeypatch):
    monkeypatch.setattr(tun.os, "geteuid", lambda: 1000)
    caps = {"CapEff": 1 << tun.CAP_NET_ADMIN, "CapAmb": 0}
    monkeypatch.setattr(tun, "_caps", lambda field: caps[field])
    with pytest.raises(ValueError):
        tun.check_privileges("teredo")
    caps["CapAmb"] = 1 << tun.CAP_NET_ADMIN
    tun.check_privileges("teredo")  # no error


def test_tunsetiff_refused_is_the_privilege_error(monkeypatch):
    opened = []
    monkeypatch.setattr(tun.os, "open", lambda path, flags: opened.append(path) or 99)
    monkeypatch.setattr(tun.os, "close", lambda fd: opened.append(fd))

    def ioctl(fd, req, arg):
        assert req == tun.TUNSETIFF and len(arg) == 40
        assert arg[:6] == b"teredo" and arg[16:18] == (tun.IFF_TUN | tun.IFF_NO_PI).to_bytes(2, "little")
        raise OSError(errno.EPERM, "Operation not permitted")
    monkeypatch.setattr(tun.fcntl, "ioctl", ioctl)
    with pytest.raises(ValueError) as e:
        tun.Tun("teredo")
    assert "needs root or CAP_NET_ADMIN" in str(e.value)
    assert opened == ["/dev/net/tun", 99]  # the descriptor is closed


@pytest.mark.parametrize("info,words", [
    ({"linkinfo": {"info_kind": "dummy"}}, "is not a teredoctl tunnel (dummy"),
    ({"linkinfo": {"info_kind": "tun"}}, "is not a teredoctl tunnel (tun"),   # a miredo's, say
    ({"linkinfo": {"info_kind": "tun"}, "ifalias": "miredo"}, "alias 'miredo'"),
])
def test_an_interface_that_is_not_ours_is_refused_and_left_alone(monkeypatch, info, words):
    ran = []
    monkeypatch.setattr(tun, "link_info", lambda name: info)
    monkeypatch.setattr(tun, "ip", lambda *a, **k: ran.append(a))
    with pytest.raises(ValueError) as e:
        tun.clean_stale("teredo")
    assert words in str(e.value) and "--ifname" in str(e.value)
    assert ran == []


def test_a_tun_of_a_running_teredoctl_is_refused(monkeypatch):
    ran = []
    monkeypatch.setattr(tun, "link_info", lambda name: {"linkinfo": {"info_kind": "tun"},
                                                        "ifalias": "teredoctl pid=4242"})
    monkeypatch.setattr(tun, "_pid_is_teredoctl", lambda pid: pid == 4242)
    monkeypatch.setattr(tun, "ip", lambda *a, **k: ran.append(a))
    with pytest.raises(ValueError) as e:
        tun.clean_stale("teredo")
    assert "running teredoctl (pid 4242)" in str(e.value) and ran == []


def test_a_stale_tun_of_ours_is_removed(monkeypatch):
    ran = []
    monkeypatch.setattr(tun, "link_info", lambda name: {"linkinfo": {"info_kind": "tun"},
                                                        "ifalias": "teredoctl pid=4242"})
    monkeypatch.setattr(tun, "_pid_is_teredoctl", lambda pid: False)
    monkeypatch.setattr(tun, "ip", lambda *a, **k: ran.append(a))
    assert tun.clean_stale("teredo") is True
    assert ran == [("link", "del", "dev", "teredo")]
    monkeypatch.setattr(tun, "link_info", lambda name: None)
    assert tun.clean_stale("teredo") is False
