"""The virtual board: a tool of its own (python -m teredoctl.vboard, or
teredoctl vboard).  See board.py."""
from teredoctl.vboard.board import *  # noqa: F401,F403
from teredoctl.vboard.board import VirtualBoard, main  # noqa: F401
