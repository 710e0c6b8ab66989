# The board's entry point (MicroPython runs it after boot.py): the Teredo
# client with its serial console.  Ctrl-C leaves it for the REPL.
import tshell

tshell.main()
