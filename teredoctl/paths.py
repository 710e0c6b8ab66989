"""Where teredoctl finds what it ships to a board, in a checkout and in an
installed wheel alike.

In the wheel the board application (app/) and the board configs are package
data inside teredoctl (teredoctl/app, teredoctl/board_configs, see
pyproject.toml); in a checkout they are the folders at the top.  The library
(teredo/) is the very package the host imports.
"""
import os
import shutil

import teredo

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(HERE)


def _first(*dirs):
    for d in dirs:
        if os.path.isdir(d):
            return d
    return dirs[0]


def library_dir():
    """The teredo package's own folder (teredo/*.py)."""
    return os.path.dirname(os.path.abspath(teredo.__file__))


def app_dir():
    """The board application: main.py, boot.py, the console and config modules."""
    return _first(os.path.join(HERE, "app"), os.path.join(CHECKOUT, "app"))


def board_configs_dir():
    return _first(os.path.join(HERE, "board_configs"), os.path.join(CHECKOUT, "board_configs"))


# The user's app module, as the board (and teredoctl client --app) imports it.
USER_APP = "teredo_user_app.py"


def _py_files(d):
    # manifest.py is for freezing a firmware, not for a board's filesystem
    return sorted(f for f in os.listdir(d) if f.endswith(".py") and f not in ("__init__.py", "manifest.py"))


def stage_firmware(dst, app=None):
    """Lay out in dst what a board's filesystem gets: teredo/ (the library),
    the application files at the top, and the user's app module (app, a path)
    as USER_APP.  Returns dst."""
    lib, top = library_dir(), app_dir()
    if not os.path.isfile(os.path.join(top, "main.py")):
        raise FileNotFoundError("the board application (main.py) is missing from %s: reinstall" % top)
    os.makedirs(os.path.join(dst, "teredo"), exist_ok=True)
    for f in _py_files(lib) + ["__init__.py"]:
        shutil.copyfile(os.path.join(lib, f), os.path.join(dst, "teredo", f))
    for f in _py_files(top):
        shutil.copyfile(os.path.join(top, f), os.path.join(dst, f))
    if app:
        shutil.copyfile(app, os.path.join(dst, USER_APP))
    return dst
