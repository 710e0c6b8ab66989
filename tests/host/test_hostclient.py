"""The host build's socket (teredo.iface.Interface on CPython)."""
import socket
import sys

import pytest

from teredo.iface import Interface


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="IP_MTU_DISCOVER is Linux's")
def test_udp_socket_does_not_set_df():
    # RFC 4380 §5.1.2: SHOULD NOT set DF; Linux's default is IP_PMTUDISC_WANT (1)
    i = Interface("198.51.100.10")
    i.open()  # binds and starts qualifying; nothing is sent until a poll
    try:
        opt = getattr(socket, "IP_MTU_DISCOVER", 10)
        assert i.sock.getsockopt(socket.IPPROTO_IP, opt) == getattr(socket, "IP_PMTUDISC_DONT", 0)
    finally:
        i.close()
    plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:  # the control: what a socket gets without it
        assert plain.getsockopt(socket.IPPROTO_IP, getattr(socket, "IP_MTU_DISCOVER", 10)) != 0
    finally:
        plain.close()
