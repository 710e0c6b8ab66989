# The console application (WiFi, the ##teredo console, config, watchdog, the
# user's app) frozen with the library it requires.  main.py stays on the
# filesystem (teredoctl flash puts it there).
metadata(description="Teredo console application for MicroPython boards", version="0.2.0")

include("../manifest.py")
module("teredo_console.py")
module("teredo_config.py")
