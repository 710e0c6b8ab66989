"""machine -- vboard ROM shim of the ESP32 MicroPython ``machine`` module.

Overrides the unix port's (extensible) built-in ``machine``.  Provided:
  reset()        hard reset: asks the vboard (control file ``request``) to
                 kill and restart the interpreter; it prints an ESP32-style
                 reset banner; afterwards reset_cause() == SOFT_RESET (as on
                 ESP32, where machine.reset() is a software CPU reset)
  soft_reset()   raises SystemExit -> the vboard prints "MPY: soft reboot"
  deepsleep([ms]) the vboard stops the interpreter for ms (0 = forever) and
                 restarts it with reset_cause() == DEEPSLEEP_RESET
  lightsleep([ms]) / idle()   plain sleeps
  reset_cause()  PWRON_RESET / WDT_RESET / SOFT_RESET / DEEPSLEEP_RESET of the
                 last hard reset (a soft reboot does not change it), wake_reason()
  unique_id()    6 bytes (= WLAN MAC, derived by the vboard from the flash dir)
  freq([hz])     160 MHz by default, settable (no effect)
  disable_irq()/enable_irq(state)  no-ops
  WDT(id=0, timeout=5000).feed()  writes the timeout to the control file
                 ``wdt`` and touches it on feed(); the vboard resets the board
                 (banner, WDT_RESET) when the file's mtime is older than the
                 timeout.  Like on ESP32 it survives a soft reboot, and only
                 a hard reset stops it.
  Pin(id, mode=-1, pull=-1, *, value=None)  IN/OUT/OPEN_DRAIN, value()/on()/
                 off()/__call__; outputs write "0"/"1" to the control file
                 ``pin<id>``, inputs read it (else the pull level, else 0).
                 irq() stores the handler but never calls it.
Not provided: Timer, RTC, UART, I2C, SPI, ADC, PWM, Signal.
"""
import time
import _vboard

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5
SLEEP = 2
DEEPSLEEP = 4
PIN_WAKE = 2
EXT0_WAKE = 2
EXT1_WAKE = 3
TIMER_WAKE = 4
TOUCHPAD_WAKE = 5
ULP_WAKE = 6

_freq = [160000000]


def _hang():
    # The vboard kills the interpreter within ~20 ms; a reset cannot be caught.
    while True:
        try:
            time.sleep_ms(50)
        except BaseException:
            pass


def reset():
    _vboard.write("request", "reset")
    _hang()


def soft_reset():
    raise SystemExit


def deepsleep(time_ms=0):
    _vboard.write("request", "deepsleep %d" % time_ms)
    _hang()


def lightsleep(time_ms=None):
    if time_ms is None:
        raise ValueError("vboard: lightsleep() needs a time")
    time.sleep_ms(time_ms)


def idle():
    time.sleep_ms(1)


def reset_cause():
    return _vboard.RESET_CAUSE


def wake_reason():
    return TIMER_WAKE if _vboard.RESET_CAUSE == DEEPSLEEP_RESET else 0


def unique_id():
    return _vboard.MAC


def freq(hz=None):
    if hz is None:
        return _freq[0]
    _freq[0] = hz


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


class WDT:
    def __init__(self, id=0, timeout=5000):
        if timeout <= 0:
            raise ValueError("WDT timeout too short")
        self._f = _vboard.open_ctl("wdt", "w")
        self._t = "%d\n" % timeout
        self.feed()

    def feed(self):
        f = self._f
        f.seek(0)
        f.write(self._t)  # each write(2) updates the file's mtime


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_DOWN = 1
    PULL_UP = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2
    WAKE_LOW = 4
    WAKE_HIGH = 5
    DRIVE_0 = 0
    DRIVE_1 = 1
    DRIVE_2 = 2
    DRIVE_3 = 3

    def __init__(self, id, mode=-1, pull=-1, *, value=None, drive=None, hold=None):
        self._id = id
        self._mode = Pin.IN
        self._pull = None
        self._v = 0
        self._irq = None
        self.init(mode, pull, value=value)

    def init(self, mode=-1, pull=-1, *, value=None, drive=None, hold=None):
        if mode != -1 and mode is not None:
            self._mode = mode
        if pull != -1:
            self._pull = pull
        if value is not None:
            self.value(value)
        elif self._mode in (Pin.OUT, Pin.OPEN_DRAIN):
            self._write()

    def __repr__(self):
        return "Pin(%s)" % self._id

    def _write(self):
        _vboard.write("pin%s" % self._id, "1" if self._v else "0")

    def value(self, v=None):
        if v is None:
            if self._mode == Pin.OUT:
                return self._v
            s = _vboard.read("pin%s" % self._id)
            if s in ("0", "1"):
                return int(s)
            return 1 if self._pull == Pin.PULL_UP else 0
        self._v = 1 if v else 0
        if self._mode in (Pin.OUT, Pin.OPEN_DRAIN):
            self._write()

    __call__ = value

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=3, *, wake=None):
        self._irq = handler
        return None
