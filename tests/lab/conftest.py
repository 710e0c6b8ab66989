"""Fixtures for the namespace-based Teredo lab (root only)."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import lab as labmod  # noqa: E402


@pytest.fixture(scope="module")
def lab(request):
    reason = labmod.require_root_and_tools()
    if reason:
        pytest.skip(f"Teredo network lab unavailable: {reason}")
    failed_before = request.session.testsfailed
    the_lab = labmod.Lab(nat1="restricted", nat2="restricted", peer_client=True)
    the_lab.up()
    try:
        yield the_lab
    finally:
        pids = the_lab.pids()
        failed = request.session.testsfailed > failed_before
        if failed:
            sys.stderr.write(f"\n[lab] tests failed; lab logs kept in {the_lab.workdir}\n")
        the_lab.down(keep_workdir=failed or None)
        left_ns, left_pids = labmod.leftovers(the_lab.prefix, pids)
        assert not left_ns and not left_pids, (left_ns, left_pids)
