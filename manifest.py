# Freezing the teredo library into a MicroPython firmware build:
#   FROZEN_MANIFEST=/path/to/this/manifest.py make -C ports/esp32 BOARD=ESP32_GENERIC
# (or include("/path/to/this/manifest.py") from a board's manifest).
metadata(description="Teredo (RFC 4380) client for MicroPython: IPv6 over UDP/IPv4", version="0.2.0")

package("teredo")
