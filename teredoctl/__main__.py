import sys

from teredoctl.cli import main

sys.exit(main())
