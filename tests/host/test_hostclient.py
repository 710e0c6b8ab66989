"""The host build's UDP socket (teredo.iface.Interface on CPython)."""
import socket
import sys

import pytest

from teredo.iface import Interface


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="IP_MTU_DISCOVER is Linux's")
def test_interface_socket_does_not_set_df():
    # RFC 4380 §5.1.2: SHOULD NOT set DF; Linux's default is IP_PMTUDISC_WANT (1)
    opt = getattr(socket, "IP_MTU_DISCOVER", 10)
    iface = Interface("198.51.100.10", port=0)
    iface.open()  # binds a port and queues an RS; nothing is sent here
    try:
        assert iface.sock.getsockopt(socket.IPPROTO_IP, opt) == getattr(socket, "IP_PMTUDISC_DONT", 0)
    finally:
        iface.close()
    plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:  # the control: what a socket gets without it
        assert plain.getsockopt(socket.IPPROTO_IP, opt) != 0
    finally:
        plain.close()
