"""Board configs (board_configs/*.json): load, check against schema.json, look up.

A board config is data only: the esptool chip and image offset, the USB
VID:PID pairs its serial port shows up with, the status LED, watchdog
timeout, heap budget and mpy-cross arch.  ``check`` implements the small
subset of JSON Schema that schema.json uses (no new dependency).
"""
import json
import os
import re

from teredoctl.paths import board_configs_dir

DIR = board_configs_dir()
SCHEMA = "schema.json"

_TYPES = {"object": dict, "array": list, "string": str, "null": type(None), "boolean": bool}


def _is_type(value, name):
    if name == "integer":
        return type(value) is int  # bool is an int in CPython; not here
    if name == "number":
        return type(value) in (int, float)
    return isinstance(value, _TYPES[name])


def check(schema, value, where="config"):
    """List of problems (empty when value satisfies schema), each naming the field."""
    errs = []
    types = schema.get("type")
    if types is not None:
        types = types if isinstance(types, list) else [types]
        if not any(_is_type(value, t) for t in types):
            return ["%s: %r is not %s" % (where, value, " or ".join(types))]
    if "enum" in schema and value not in schema["enum"]:
        errs.append("%s: %r is not one of %s" % (where, value, schema["enum"]))
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errs.append("%s: %r does not match %s" % (where, value, schema["pattern"]))
        if len(value) < schema.get("minLength", 0):
            errs.append("%s: %r is shorter than %d" % (where, value, schema["minLength"]))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errs.append("%s: %r is longer than %d" % (where, value, schema["maxLength"]))
    if type(value) in (int, float):
        if "minimum" in schema and value < schema["minimum"]:
            errs.append("%s: %r is below %r" % (where, value, schema["minimum"]))
        if "maximum" in schema and value > schema["maximum"]:
            errs.append("%s: %r is above %r" % (where, value, schema["maximum"]))
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errs.append("%s: fewer than %d items" % (where, schema["minItems"]))
        if schema.get("uniqueItems") and len(set(map(json.dumps, value))) != len(value):
            errs.append("%s: items repeat" % where)
        if "items" in schema:
            for i, v in enumerate(value):
                errs += check(schema["items"], v, "%s[%d]" % (where, i))
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for k in schema.get("required", ()):
            if k not in value:
                errs.append("%s: %s is missing" % (where, k))
        for k, v in value.items():
            if k in props:
                errs += check(props[k], v, "%s.%s" % (where, k))
            elif schema.get("additionalProperties", True) is False:
                errs.append("%s: unknown field %s" % (where, k))
    return errs


def load_schema(directory=DIR):
    with open(os.path.join(directory, SCHEMA)) as f:
        return json.load(f)


def load_all(directory=DIR):
    """{name: config} of every board config; ValueError names a broken file."""
    schema = load_schema(directory)
    boards = {}
    for fn in sorted(os.listdir(directory)):
        if not fn.endswith(".json") or fn == SCHEMA:
            continue
        path = os.path.join(directory, fn)
        try:
            with open(path) as f:
                cfg = json.load(f)
        except ValueError as e:
            raise ValueError("%s is not valid JSON (%s): fix it" % (path, e))
        errs = check(schema, cfg, fn)
        if not errs and cfg["name"] != fn[:-5]:
            errs.append("%s: name %r differs from the file name" % (fn, cfg["name"]))
        if not errs and (cfg["chip"] is None) != (cfg["image_offset"] is None):
            errs.append("%s: chip and image_offset must both be set or both be null" % fn)
        if errs:
            raise ValueError("board config %s is invalid: %s" % (path, "; ".join(errs)))
        boards[cfg["name"]] = cfg
    return boards


def get(name, directory=DIR):
    boards = load_all(directory)
    if name not in boards:
        raise ValueError("unknown board %r (known: %s)" % (name, ", ".join(sorted(boards))))
    return boards[name]


def usb_id(vid, pid):
    return "%04x:%04x" % (vid, pid)


def by_usb_id(vid, pid, directory=DIR):
    """Names of the boards whose serial port shows up with this VID:PID."""
    if vid is None or pid is None:
        return []
    key = usb_id(vid, pid)
    return [n for n, c in sorted(load_all(directory).items()) if key in c["usb_ids"]]


def by_identity(platform, machine, directory=DIR):
    """The board config a running MicroPython describes (sys.platform,
    os.uname().machine), or None.  A specific MCU match beats a generic one."""
    best = None
    for _, c in sorted(load_all(directory).items()):
        if c["platform"] != platform:
            continue
        if c["mcu"] and not machine.endswith("with " + c["mcu"]):
            continue
        if best is None or len(c["mcu"]) > len(best["mcu"]):
            best = c
    return best


def image_offset(cfg):
    return int(cfg["image_offset"], 16)


def board_json(cfg):
    """What the firmware reads from board.json on the board (teredo_console._board)."""
    return {"name": cfg["name"], "led_pin": cfg["status_led_pin"], "wdt_ms": cfg["wdt_timeout_ms"],
            "heap_budget": cfg["heap_budget"]}
