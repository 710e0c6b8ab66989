import sys

from teredoctl.vboard.board import main

sys.exit(main())
