# The Teredo client core (RFC 4380, RFC 5991, RFC 6081), sans-I/O, shared
# byte for byte by the ESP32 firmware (MicroPython) and the host (CPython).
VERSION = "0.1.0"
