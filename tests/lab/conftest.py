"""Fixtures for the namespace-based Teredo lab (root only)."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import lab as labmod  # noqa: E402


def lab_for(request, **kw):
    """A lab for a test module (a generator for a fixture to yield from):
    built with Lab(**kw), torn down after the module, its logs kept when a
    test failed, and nothing left behind."""
    reason = labmod.require_root_and_tools()
    if reason:
        pytest.skip(f"Teredo network lab unavailable: {reason}")
    failed_before = request.session.testsfailed
    the_lab = labmod.Lab(**kw)
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


@pytest.fixture(scope="module")
def lab(request):
    yield from lab_for(request, nat1="restricted", nat2="restricted", peer_client=True)
