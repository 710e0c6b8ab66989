"""The host build (`teredoctl client ...`) with echo replies unlimited
(`--echo-rate 0`; the default limit is 200/s) for throughput runs.
Usage: python bench/hostrun.py --server IP"""
import sys

from teredoctl.cli import main

sys.exit(main(["client", "--echo-rate", "0"] + sys.argv[1:]))
