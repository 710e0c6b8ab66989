# pytest only (tests/mp_run.py does the same on MicroPython): a core test
# module may name tests that show a known bug in XFAIL = {"test_name":
# "the bug"}.  They run as strict xfail: once the bug is fixed the test
# passes, pytest reports the XPASS as a failure, and the entry goes.
# (The core test files cannot import pytest: they run on MicroPython too.)
import pytest


def pytest_collection_modifyitems(config, items):
    for item in items:
        xfail = getattr(item.module, "XFAIL", None)
        if xfail and item.originalname in xfail:
            item.add_marker(pytest.mark.xfail(reason=xfail[item.originalname], strict=True))
