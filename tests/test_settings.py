"""Configuration: the example is complete and valid; bad files name the file, key and problem."""
from __future__ import annotations

import logging
import shutil
import subprocess
import sys

import pytest

from callcenter.settings import ConfigError, load_settings
from tests.conftest import ROOT


def test_example_configuration_uses_the_seed_list(settings):
    names = {d.name for d in settings.departments}
    seven = {"区教育局", "区建管委", "区市场监管局", "区科委", "区卫健委", "区医保局", "青浦区公共租赁住房运营有限公司"}
    assert seven <= names
    items = [i for d in settings.departments if d.name in seven for i in d.items]
    assert len(items) == 17 and "食品经营许可" in items
    for post in settings.posts:
        assert post.a != post.b
    assert settings.service_office == "office"


def _copy(tmp_path):
    target = tmp_path / "config"
    shutil.copytree(ROOT / "config", target)
    return target


def test_error_names_file_key_and_problem(tmp_path):
    cfg = _copy(tmp_path)
    text = (cfg / "callcenter.yaml").read_text().replace("port: 5038", "port: seventy")
    (cfg / "callcenter.yaml").write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg)
    message = str(exc.value)
    assert "callcenter.yaml" in message and "pbxes[0].port" in message and "integer" in message


def test_cross_reference_error(tmp_path):
    cfg = _copy(tmp_path)
    text = (cfg / "agents.yaml").read_text().replace('a: "1001", b: "1002"', 'a: "1001", b: "9999"')
    (cfg / "agents.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"agents.yaml: posts\[0\].b: unknown agent '9999'"):
        load_settings(cfg)


def test_unknown_key_and_bad_yaml(tmp_path):
    cfg = _copy(tmp_path)
    (cfg / "extra.yaml").write_text("thresholds_typo: 1\n")
    with pytest.raises(ConfigError, match=r"extra.yaml: thresholds_typo: Extra inputs are not permitted"):
        load_settings(cfg)
    (cfg / "extra.yaml").write_text("a: [unclosed\n")
    with pytest.raises(ConfigError, match=r"extra.yaml: not valid YAML"):
        load_settings(cfg)
    (cfg / "extra.yaml").write_text("departments: []\n")
    with pytest.raises(ConfigError, match=r"extra.yaml: departments: already set in .*departments.yaml"):
        load_settings(cfg)


def test_business_hours_window_is_checked(tmp_path):
    cfg = _copy(tmp_path)
    text = (cfg / "callcenter.yaml").read_text().replace('"13:30-16:30"', '"16:30-13:30"')
    (cfg / "callcenter.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"business_hours\[1\]: window ends"):
        load_settings(cfg)


def test_secret_from_environment_is_never_shown(tmp_path, monkeypatch, caplog):
    cfg = _copy(tmp_path)
    monkeypatch.setenv("CALLCENTER_AMI_SECRET", "s3cr3t-value")
    with caplog.at_level(logging.DEBUG):
        settings = load_settings(cfg)
    assert settings.pbxes[0].secret.get_secret_value() == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(settings) and "s3cr3t-value" not in caplog.text
    text = (cfg / "callcenter.yaml").read_text().replace("${CALLCENTER_AMI_SECRET:-ccsecret}", "${NOT_SET_ANYWHERE}")
    (cfg / "callcenter.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"pbxes\[0\].secret: environment variable NOT_SET_ANYWHERE is not set"):
        load_settings(cfg)


def test_cli_exits_non_zero_with_the_message(tmp_path):
    cfg = _copy(tmp_path)
    text = (cfg / "departments.yaml").read_text().replace("queues: [q-edu]", "queues: []")
    (cfg / "departments.yaml").write_text(text)
    result = subprocess.run([sys.executable, "-m", "callcenter.cli", "config", "check", "--config", str(cfg)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "departments.yaml: departments[0].queues: List should have at least 1 item" in result.stderr
    ok = subprocess.run([sys.executable, "-m", "callcenter.cli", "config", "check", "--config", str(ROOT / "config")],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "8 departments" in ok.stdout
