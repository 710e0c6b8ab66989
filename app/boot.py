# Runs first at every boot.  Nothing to set up before main.py: the client
# shell (teredo_console.py) owns WiFi, the watchdog and the LED.
import gc

gc.collect()
