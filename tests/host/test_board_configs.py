"""board_configs/: every config satisfies schema.json; the facts teredoctl relies on
(esptool chip, image offset, USB ids, mpy arch) are the right ones; the schema
checker itself rejects what it should."""
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from teredoctl import boards  # noqa: E402

CONFIGS = sorted(p for p in (ROOT / "board_configs").glob("*.json") if p.name != "schema.json")


def test_the_boards_we_support_are_there():
    assert {p.stem for p in CONFIGS} >= {"esp32", "esp32s3", "esp32c3", "unix"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_satisfies_schema(path):
    schema = boards.load_schema()
    cfg = json.loads(path.read_text())
    assert boards.check(schema, cfg, path.name) == []
    assert cfg["name"] == path.stem
    assert (cfg["chip"] is None) == (cfg["image_offset"] is None)


def test_load_all_checks_every_file():
    all_ = boards.load_all()
    assert sorted(all_) == [p.stem for p in CONFIGS]


@pytest.mark.parametrize("name,chip,offset,arch", [
    ("esp32", "esp32", 0x1000, "xtensawin"),
    ("esp32s3", "esp32s3", 0x0, "xtensawin"),
    ("esp32c3", "esp32c3", 0x0, "rv32imc"),
])
def test_esp_facts(name, chip, offset, arch):
    cfg = boards.get(name)
    assert cfg["chip"] == chip and boards.image_offset(cfg) == offset and cfg["mpy_arch"] == arch


def test_unix_board_is_the_virtual_board():
    cfg = boards.get("unix")
    assert cfg["chip"] is None and cfg["mpy_arch"] == "x64" and cfg["usb_ids"] == []
    assert cfg["platform"] == "linux"


def test_usb_ids_recognise_the_usual_bridges():
    assert "esp32" in boards.by_usb_id(0x10C4, 0xEA60)   # CP210x
    assert "esp32" in boards.by_usb_id(0x1A86, 0x7523)   # CH340
    assert "esp32" in boards.by_usb_id(0x1A86, 0x55D4)   # CH9102
    assert "esp32" in boards.by_usb_id(0x0403, 0x6001)   # FTDI
    assert boards.by_usb_id(0x303A, 0x1001) == ["esp32c3", "esp32s3"]  # Espressif native USB
    assert boards.by_usb_id(0x1234, 0x5678) == [] and boards.by_usb_id(None, None) == []


def test_identity_from_micropython():
    assert boards.by_identity("esp32", "Generic ESP32 module with ESP32")["name"] == "esp32"
    assert boards.by_identity("esp32", "ESP32S3 module with ESP32S3")["name"] == "esp32s3"
    assert boards.by_identity("esp32", "ESP32C3 module with ESP32C3")["name"] == "esp32c3"
    assert boards.by_identity("linux", "linux [GCC 14.2.1] version")["name"] == "unix"
    assert boards.by_identity("rp2", "Raspberry Pi Pico with RP2040") is None


def test_board_json_is_what_the_firmware_reads():
    # app/teredo_console.py reads name, led_pin and wdt_ms from board.json
    bj = boards.board_json(boards.get("esp32"))
    assert bj["name"] == "esp32" and bj["led_pin"] == 2 and type(bj["wdt_ms"]) is int
    assert boards.board_json(boards.get("esp32s3"))["led_pin"] is None
    shell = (ROOT / "app" / "teredo_console.py").read_text()
    for k in ("led_pin", "wdt_ms", '"board.json"'):
        assert k in shell


def test_checker_rejects_what_it_should():
    schema = boards.load_schema()
    good = json.loads((ROOT / "board_configs" / "esp32.json").read_text())

    def errs(**change):
        cfg = dict(good)
        for k, v in change.items():
            if v is KeyError:
                del cfg[k]
            else:
                cfg[k] = v
        return " | ".join(boards.check(schema, cfg, "x"))
    assert errs() == ""
    assert "chip is missing" in errs(chip=KeyError)
    assert "unknown field colour" in errs(colour="red")
    assert "does not match" in errs(usb_ids=["10C4:EA60"])  # lower-case hex only
    assert "does not match" in errs(image_offset="4096")
    assert "is not integer" in errs(wdt_timeout_ms=True)  # a bool is no integer here
    assert "is not integer or null" in errs(status_led_pin="2")
    assert "is above 63" in errs(status_led_pin=64)
    assert "is not one of" in errs(mpy_arch="arm64")
    assert "items repeat" in errs(usb_ids=["10c4:ea60", "10c4:ea60"])


def test_load_all_names_a_broken_file(tmp_path):
    d = tmp_path / "cfg"
    shutil.copytree(ROOT / "board_configs", d)
    (d / "esp32.json").write_text('{"name": "esp32",')
    with pytest.raises(ValueError, match="esp32.json is not valid JSON"):
        boards.load_all(str(d))
    cfg = json.loads((ROOT / "board_configs" / "esp32c3.json").read_text())
    cfg["name"] = "other"
    (d / "esp32.json").write_text((ROOT / "board_configs" / "esp32.json").read_text())
    (d / "esp32c3.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="differs from the file name"):
        boards.load_all(str(d))
    cfg["name"], cfg["image_offset"] = "esp32c3", None
    (d / "esp32c3.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="both be set or both be null"):
        boards.load_all(str(d))
    os.unlink(d / "esp32c3.json")
    with pytest.raises(ValueError, match="unknown board 'esp32c3'"):
        boards.get("esp32c3", str(d))
