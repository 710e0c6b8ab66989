"""The board's config file (app/teredo_config.py): validation, atomic save,
and what load() makes of a save cut short by a reset at each step."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "app"))
import teredo_config  # noqa: E402

GOOD = {"server": "198.51.100.10"}


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def test_save_then_load_and_masking():
    cfg = teredo_config.save({"server": "198.51.100.10", "wifi_ssid": "home", "wifi_password": "pw"})
    assert cfg["refresh_s"] == 30 and cfg["server2"] is None
    got, err = teredo_config.load()
    assert err is None and got == cfg
    assert teredo_config.masked(got)["wifi_password"] == "********"
    assert not os.path.exists(teredo_config.NEW)


def test_server_names_and_lists_are_kept_as_given():
    for v in ("teredo.example.net", "teredo.example.net, 198.51.100.10", "198.51.100.10,203.0.113.5"):
        cfg = teredo_config.save({"server": v})
        assert cfg["server"] == v
        got, err = teredo_config.load()
        assert err is None and got["server"] == v


@pytest.mark.parametrize("bad,words", [
    ({}, "no Teredo server"),
    ({"server": "10.0.0.1"}, "not a global"),
    ({"server": "198.51.100.10", "refresh_s": 5}, "refresh_s"),
    ({"server": "198.51.100.10", "client_port": 70000}, "client_port"),
    ({"server": "198.51.100.10", "colour": "red"}, "unknown config key"),
    ({"server": "198.51.100.10", "wifi_ssid": ""}, "wifi_ssid"),
    ({"server": "teredo..example"}, "neither an IPv4 address nor a host name"),
    ({"server": "198.51.100.10,,203.0.113.5"}, "empty entry"),
    ({"server": ",".join("198.51.100.%d" % k for k in range(10, 15))}, "at most 4"),
    ({"server": "198.51.100.10,203.0.113.5", "server2": "198.51.100.20"}, "server2 goes with a single"),
    ({"server": "teredo.example", "server2": "198.51.100.20"}, "server2 goes with a single"),
    ({"server": "198.51.100.10", "server2": "198.51.100.10"}, "differ"),
    ({"server": 3}, "in quotes"),
])
def test_validation_says_what_to_fix(bad, words):
    with pytest.raises(ValueError) as e:
        teredo_config.save(bad)
    assert words in str(e.value)
    assert not os.path.exists(teredo_config.PATH)


def test_reset_while_writing_new_file_keeps_old_config():
    teredo_config.save(GOOD)
    with open(teredo_config.NEW, "w") as f:
        f.write('{"server": "203.0.1')  # the reset hit mid-write
    got, err = teredo_config.load()
    assert err is None and got["server"] == "198.51.100.10"
    assert not os.path.exists(teredo_config.NEW)


def test_reset_between_remove_and_rename_uses_complete_new_file():
    teredo_config.save(GOOD)
    with open(teredo_config.NEW, "w") as f:
        json.dump(teredo_config.validate({"server": "203.0.113.5"}), f)
    os.remove(teredo_config.PATH)  # the reset hit after the remove
    got, err = teredo_config.load()
    assert err is None and got["server"] == "203.0.113.5"
    assert os.path.exists(teredo_config.PATH) and not os.path.exists(teredo_config.NEW)


def test_corrupt_or_missing_config_gives_a_sentence():
    got, err = teredo_config.load()
    assert got is None and "teredoctl config" in err
    with open(teredo_config.PATH, "w") as f:
        f.write("{not json")
    got, err = teredo_config.load()
    assert got is None and "config.json is invalid" in err
