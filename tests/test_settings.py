"""Configuration: the example is complete and valid; bad files name the file, key and problem."""
from __future__ import annotations

import logging
import shutil
import ssl
import subprocess
import sys
from pathlib import Path

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


# --- consistency across keys (issue 10) -------------------------------------------------------

def _edit(cfg, name: str, old: str, new: str) -> None:
    text = (cfg / name).read_text()
    assert old in text, f"{old!r} not in {name}"
    (cfg / name).write_text(text.replace(old, new, 1))


SECOND_PBX = "    reconnect_max: 30\n  - {id: pbx2, host: 127.0.0.1, port: 5039, username: cc, secret: x}\n"
MARKET_POST = '{id: market-1, department: market, a: "1001", b: "1002",'


@pytest.mark.parametrize("edits, message", [
    ([("agents.yaml", MARKET_POST, MARKET_POST.replace("a:", "queue: q-nowhere, a:"))],
     r"agents.yaml: posts\[0\].queue: queue 'q-nowhere' belongs to no department"),
    ([("agents.yaml", MARKET_POST, MARKET_POST.replace("a:", "queue: q-edu, a:"))],
     r"agents.yaml: posts\[0\].queue: queue 'q-edu' belongs to department 'edu', not to the post's department "
     r"'market'"),
    ([("departments.yaml", "queues: [q-construction]", "queues: [q-edu]")],
     r"departments.yaml: departments\[1\].queues\[0\]: queue 'q-edu' on every PBX already belongs to department "
     r"'edu' \(departments\[0\].queues\[0\]\)"),
    ([("callcenter.yaml", "    reconnect_max: 30\n", SECOND_PBX),
      ("departments.yaml", "queues: [q-edu]", "queues: [{name: q-x, pbx: pbx2}]"),
      ("departments.yaml", "queues: [q-construction]", "queues: [{name: q-x, pbx: pbx2}]")],
     r"departments.yaml: departments\[1\].queues\[0\]: queue 'q-x' on PBX pbx2 already belongs to department 'edu'"),
    ([("departments.yaml", 'hotlines: ["62000004"]', 'hotlines: ["62000002"]')],
     r"departments.yaml: departments\[1\].hotlines\[0\]: hotline '62000002' already belongs to department 'edu'"),
    ([("departments.yaml", 'hotlines: ["62000004"]', 'hotlines: ["6200 0004"]')],
     r"departments.yaml: departments\[1\].hotlines\[0\]: '6200 0004' is not a phone number"),
    ([("callcenter.yaml", 'dial_prefix: ""', 'dial_prefix: "0\\r\\nAction: Logoff"')],
     r"callcenter.yaml: followup.callback.dial_prefix: '0\\r\\nAction: Logoff': only digits, \* and # are allowed"),
    ([("callcenter.yaml", "context: callback", "context: call back")],
     r"callcenter.yaml: followup.callback.context: 'call back' is not a dialplan context name"),
    ([("agents.yaml", 'a: "1001", b: "1002"', 'a: "1001", b: "1001"')],
     r"agents.yaml: posts\[0\].b: agent '1001' is also the post's A; a post needs two agents"),
    ([("agents.yaml", '"PJSIP/1002"]', '"PJSIP/1001"]')],
     r"agents.yaml: agents\[1\].interfaces\[1\]: 'PJSIP/1001' already belongs to agent '1001' "
     r"\(agents\[0\].interfaces\[1\]\); the PBX could not tell the two apart"),
    ([("callcenter.yaml", "  host: 127.0.0.1\n  port: 8080", "  host: 0.0.0.0\n  port: 8080")],
     r"callcenter.yaml: web.host: '0.0.0.0' is not a loopback address and the API would serve plain HTTP there; "
     r"configure web.tls \(cert and key\) or put it behind a TLS reverse proxy and set web.behind_proxy: true"),
    ([("callcenter.yaml", "  host: 127.0.0.1\n  port: 8080", "  host: hotline.example.gov.cn\n  port: 8080")],
     r"callcenter.yaml: web.host: 'hotline.example.gov.cn' is not a loopback address"),
    ([("callcenter.yaml", "  host: 127.0.0.1\n  port: 8080", "  host: 0.0.0.0\n  tls: {cert: nope.pem, key: nope.key}")],
     r"callcenter.yaml: web.tls.cert: file not found: .*nope.pem"),
    ([("callcenter.yaml", "  host: 127.0.0.1\n  port: 8080",
       "  host: 127.0.0.1\n  port: 8080\n  allowed_origins: [\"https://panel.example.gov.cn/\"]")],
     r"callcenter.yaml: web.allowed_origins: .*'https://panel.example.gov.cn/' is not an origin"),
])
def test_inconsistent_configuration_is_refused_naming_file_key_and_problem(tmp_path, edits, message):
    cfg = _copy(tmp_path)
    for edit in edits:
        _edit(cfg, *edit)
    with pytest.raises(ConfigError, match=message):
        load_settings(cfg)


def test_the_same_queue_name_on_two_pbxes_may_belong_to_two_departments(tmp_path):
    cfg = _copy(tmp_path)
    _edit(cfg, "callcenter.yaml", "    reconnect_max: 30\n", SECOND_PBX)
    _edit(cfg, "departments.yaml", "queues: [q-edu]", "queues: [{name: q-x, pbx: pbx1}]")
    _edit(cfg, "departments.yaml", "queues: [q-construction]", "queues: [{name: q-x, pbx: pbx2}]")
    for dept in ("market", "housing", "science", "health", "medins", "office"):   # queues on every PBX:
        _edit(cfg, "agents.yaml", f"department: {dept},", f"department: {dept}, pbx: pbx1,")  # a post names its PBX
    settings = load_settings(cfg)
    assert settings.directory().queue_department == {**settings.directory().queue_department,
                                                     ("pbx1", "q-x"): "edu", ("pbx2", "q-x"): "construction"}


def _self_signed(directory) -> tuple[str, str]:
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    cert, key = directory / "web.pem", directory / "web.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert.name, key.name


def test_a_public_host_is_accepted_behind_a_proxy_or_with_tls(tmp_path):
    cfg = _copy(tmp_path)
    _edit(cfg, "callcenter.yaml", "  host: 127.0.0.1\n  port: 8080", "  host: 0.0.0.0\n  behind_proxy: true")
    assert load_settings(cfg).web.behind_proxy is True
    cert, key = _self_signed(cfg)
    _edit(cfg, "callcenter.yaml", "  behind_proxy: true", f"  tls: {{cert: {cert}, key: {key}}}")
    web = load_settings(cfg).web
    assert web.tls.cert == str(cfg / cert) and web.tls.key == str(cfg / key)     # relative to the directory
    from callcenter.settings_checks import tls_context
    assert tls_context(Path(web.tls.cert), Path(web.tls.key)).minimum_version == ssl.TLSVersion.TLSv1_2
    (cfg / key).write_text("not a key\n")
    with pytest.raises(ConfigError, match=r"callcenter.yaml: web.tls: cannot use certificate .*web.pem with key"):
        load_settings(cfg)


async def test_web_tls_serves_https(tmp_path, settings, db_url):
    import ssl

    import aiohttp

    from callcenter.bootstrap import build
    from callcenter.web.app import WebServer
    cert, key = _self_signed(tmp_path)
    web = type(settings.web).model_validate({**settings.web.model_dump(), "host": "0.0.0.0",
                                             "tls": {"cert": str(tmp_path / cert), "key": str(tmp_path / key)}})
    app = build(settings.model_copy(update={"web": web}), db_url)
    await app.store.migrate()
    server = WebServer(app, "127.0.0.1", 0)
    await server.start()
    try:
        port = server.addresses[0][1]
        trust = ssl.create_default_context(cafile=str(tmp_path / cert))
        trust.check_hostname = False
        async with aiohttp.ClientSession() as session:
            async with session.get(f"https://127.0.0.1:{port}/api/health", ssl=trust) as response:
                assert response.status == 200 and (await response.json())["status"] == "ok"
            with pytest.raises(aiohttp.ClientError):          # plain HTTP is not answered
                async with session.get(f"http://127.0.0.1:{port}/api/health") as response:
                    await response.read()
    finally:
        await server.stop()
        await app.store.close()


def test_config_check_names_the_inconsistency(tmp_path):
    cfg = _copy(tmp_path)
    _edit(cfg, "departments.yaml", 'hotlines: ["62000004"]', 'hotlines: ["62000002"]')
    result = subprocess.run([sys.executable, "-m", "callcenter.cli", "config", "check", "--config", str(cfg)],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "departments.yaml: departments[1].hotlines[0]: hotline '62000002' already belongs to department 'edu'" \
        in result.stderr
