# The board's entry point (MicroPython runs it after boot.py): the Teredo
# client with its serial console.  Ctrl-C leaves it for the REPL.
#
# A block is held while the code loads and the client makes its buffers, and
# freed before the event loop, so that recvfrom (which allocates each
# datagram) finds room even in a small heap, however loading fragmented it.
room = [bytearray(1600)]
import teredo_console  # noqa: E402

teredo_console.main(room)
