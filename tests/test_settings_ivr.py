"""The `ivr:` configuration (callcenter/settings_ivr.py): zh-CN defaults derived from the
departments' items, overrides, the example in config/callcenter.yaml, and the checks (errors name
the file, the key and the problem)."""
from __future__ import annotations

import re
import shutil
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest
import yaml

from callcenter import settings_ivr as si
from callcenter.domain.calendar import WorkdayCalendar
from callcenter.domain.ivr_flow import Digits, Facts, Session
from callcenter.settings import ConfigError, load_settings
from tests.conftest import ROOT

NOW = datetime(2026, 11, 30, 2, 0, tzinfo=timezone.utc)     # Monday 10:00 in Shanghai


def _config(tmp_path, ivr: str | None = None, edits=()):
    target = tmp_path / "config"
    shutil.copytree(ROOT / "config", target)
    for name, old, new in edits:
        text = (target / name).read_text()
        assert old in text
        (target / name).write_text(text.replace(old, new, 1))
    if ivr is not None:
        (target / "ivr.yaml").write_text(ivr)
    return target


def test_without_an_ivr_section_every_department_gets_a_menu_of_its_items(settings):
    assert settings.ivr.fastagi.port == 4573 and settings.ivr.fastagi.host == "127.0.0.1"
    assert settings.ivr.fastagi.session_timeout > 0 and settings.ivr.fastagi.read_timeout > 0
    for dept in settings.departments:
        flow = si.flow_for(settings, dept.id)
        assert flow.queue == dept.queues[0].name and flow.department == dept.id
        assert [(e.digit, e.item, e.queue) for e in flow.menu.entries] == \
            [(str(i), item, dept.queues[0].name) for i, item in enumerate(dept.items, 1)]
        text = flow.menu.prompt.text
        for i, item in enumerate(dept.items, 1):
            assert f"{item}请按{i}" in text
        assert "人工服务请按0" in text and "{" not in text
        assert flow.menu.prompt.file == f"callcenter/{dept.id}-menu"
        assert flow.prompts.welcome.text == f"您好，欢迎致电{dept.name}。"
        assert flow.prompts.welcome.file == f"callcenter/{dept.id}-welcome"
        assert "{hours}" in flow.prompts.closed.text          # filled in per call from Facts.hours_text
        assert flow.prompts.invalid.text.startswith("输入有误")
        assert "满意请按1" in flow.prompts.survey.text and flow.survey_enabled
        assert flow.timeout == 5 and flow.max_repeats == 2 and flow.max_digits == 1


def test_a_hotline_finds_its_departments_flow(settings):
    flow = si.flow_for_hotline(settings, "62000001")
    assert flow.department == "market" and flow.menu.entry("2").item == "食品经营许可"
    assert si.flow_for_hotline(settings, "99999999") is None
    with pytest.raises(KeyError):
        si.flow_for(settings, "nowhere")


def test_the_default_flow_walks_to_the_queue(settings):
    flow = si.flow_for_hotline(settings, "62000001")
    open_now, hours = si.business_hours(settings, WorkdayCalendar([], [], [2026], ZoneInfo("Asia/Shanghai")),
                                        "market", NOW)
    assert open_now and hours == "工作日 9:00-11:30、13:30-16:30"
    s = Session(flow, Facts(NOW, "62000001", "13800000001", "pbx1", "market", open_now, hours))
    s.start()
    steps = s.feed(Digits("2"))
    assert steps[-1].queue == "q-market" and steps[-1].item == "食品经营许可"
    assert steps[-1].variables == {"QNAME": "q-market", "CHOICE": "2", "LEVEL": "1"}


def test_all_prompts_lists_every_sound_file_with_its_text(settings):
    prompts = si.all_prompts(settings)
    for dept in settings.departments:
        for kind in ("welcome", "menu", "closed"):
            assert f"callcenter/{dept.id}-{kind}" in prompts
    assert "工作日 9:00-11:30、13:30-16:30" in prompts["callcenter/market-closed"]
    for name in ("invalid", "goodbye", "survey", "survey-thanks", "callback-record", "owner"):
        assert f"callcenter/{name}" in prompts
    assert not any("{" in text for text in prompts.values())
    assert all(si.SOUND.fullmatch(file) for file in prompts)


def test_the_commented_example_in_callcenter_yaml_is_valid(tmp_path):
    text = (ROOT / "config" / "callcenter.yaml").read_text()
    block = text[text.index("# ivr:\n"):]
    lines = []
    for line in block.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[2:] if line.startswith("# ") else line[1:])
    example = yaml.safe_load("\n".join(lines))
    assert set(example["ivr"]) >= {"prompts", "survey", "fastagi", "menus", "timeout"}
    s = load_settings(_config(tmp_path, yaml.safe_dump(example, allow_unicode=True)))
    flow = si.flow_for(s, "market")
    assert [e.digit for e in flow.menu.entries] == ["1", "2", "3"]
    assert flow.menu.entry("3").submenu.entry("2").item == "《酒类商品零售许可证》审批"
    assert flow.menu.entry("3").submenu.prompt.file == "callcenter/market-menu-3"
    assert "特种设备安全管理人员、作业人员资格认定请按1" in flow.menu.entry("3").submenu.prompt.text
    assert "其他许可请按3" in flow.menu.prompt.text
    assert si.flow_for(s, "edu").menu.entries[0].digit == "1"          # others keep their default menu


def test_overrides_another_queue_a_hotline_menu_and_settings(tmp_path):
    ivr = """
ivr:
  timeout: 3
  max_repeats: 1
  callback_enabled: false
  survey: {enabled: false}
  fastagi: {host: 0.0.0.0, port: 4600, session_timeout: 120, read_timeout: 10}
  prompts:
    welcome: {text: "欢迎致电{department}热线", file: sounds/welcome}
  menus:
    - department: market
      entries:
        - {digit: "1", item: 食品经营许可, queue: q-food}
        - {digit: "2", label: 其他事项}
    - department: market
      hotline: "62000001"
      welcome: {text: 市场监管专线, file: callcenter/market-line}
      entries:
        - {digit: "9", item: 企业登记档案查阅}
"""
    s = load_settings(_config(tmp_path, ivr, [("departments.yaml", "queues: [q-market]", "queues: [q-market, q-food]")]))
    assert s.ivr.fastagi.port == 4600 and s.ivr.fastagi.session_timeout == 120
    dept_flow = si.flow_for(s, "market")
    assert [(e.digit, e.label, e.queue) for e in dept_flow.menu.entries] == \
        [("1", "食品经营许可", "q-food"), ("2", "其他事项", "q-market")]
    assert dept_flow.prompts.welcome.text == "欢迎致电区市场监管局热线" and dept_flow.prompts.welcome.file == "sounds/welcome"
    assert dept_flow.timeout == 3 and dept_flow.max_repeats == 1
    assert not dept_flow.callback_enabled and not dept_flow.survey_enabled
    line = si.flow_for_hotline(s, "62000001")
    assert [e.digit for e in line.menu.entries] == ["9"] and line.prompts.welcome.text == "市场监管专线"


@pytest.mark.parametrize("ivr, message", [
    ("ivr:\n  menus: [{department: nowhere}]\n", r"ivr.yaml: ivr.menus\[0\].department: unknown department 'nowhere'"),
    ("ivr:\n  menus: [{department: market, hotline: '62000002'}]\n",
     r"ivr.yaml: ivr.menus\[0\].hotline: '62000002' is not a hotline of department 'market'"),
    ("ivr:\n  menus: [{department: market, entries: [{digit: '1', item: 食品经营许可, queue: q-edu}]}]\n",
     r"ivr.yaml: ivr.menus\[0\].entries\[0\].queue: 'q-edu' is not a queue of department 'market' \(its queues: q-market\)"),
    ("ivr:\n  menus: [{department: market, entries: [{digit: '1', label: a}, {digit: '1', label: b}]}]\n",
     r"ivr.yaml: ivr.menus\[0\].entries\[1\].digit: '1' is used twice in this menu \(also \[0\]\)"),
    ("ivr:\n  menus: [{department: market, entries: [{digit: '0', label: a}]}]\n",
     r"ivr.yaml: ivr.menus\[0\].entries\[0\].digit: '0' must be 1-99 \(0 is the queue"),
    ("ivr:\n  menus: [{department: market, entries: [{digit: '*', label: a}]}]\n",
     r"ivr.yaml: ivr.menus\[0\].entries\[0\].digit: '\*' must be 1-99"),
    ("ivr:\n  menus: [{department: market, entries: [{digit: '1', item: 教师资格认定}]}]\n",
     r"ivr.yaml: ivr.menus\[0\].entries\[0\].item: '教师资格认定' is not a service item of department 'market'"),
    ("ivr:\n  menus: [{department: market, entries: [{digit: '1'}]}]\n",
     r"ivr.yaml: ivr.menus\[0\].entries\[0\]: needs an item or a label"),
    ("ivr:\n  menus: [{department: market, entries: [{digit: '1', label: a, menu: []}]}]\n",
     r"ivr.yaml: ivr.menus\[0\].entries\[0\].menu: an empty sub-menu"),
    ("ivr:\n  menus: [{department: market, entries: [{digit: '1', label: a, menu: [{digit: '1', label: b, menu: "
     "[{digit: '1', label: c, menu: [{digit: '1', label: d}]}]}]}]}]\n",
     r"ivr.yaml: ivr.menus\[0\].entries\[0\].menu\[0\].menu\[0\].menu: menus deeper than 3 levels"),
    ("ivr:\n  menus: [{department: market, entries: [{digit: '1', label: a, menu: [{digit: '2', label: b}, "
     "{digit: '2', label: c}]}]}]\n",
     r"ivr.yaml: ivr.menus\[0\].entries\[0\].menu\[1\].digit: '2' is used twice"),
    ("ivr:\n  menus: [{department: market}, {department: market}]\n",
     r"ivr.yaml: ivr.menus\[1\]: a second menu for market \(also ivr.menus\[0\]\)"),
    ("ivr:\n  prompts: {welcome: {text: 你好, file: ../../etc/passwd}}\n",
     r"ivr.yaml: ivr.prompts.welcome.file: '../../etc/passwd' is not a sound file name"),
    ("ivr:\n  survey: {prompt: {text: 评价, file: 'a b'}}\n",
     r"ivr.yaml: ivr.survey.prompt.file: 'a b' is not a sound file name"),
    ("ivr:\n  menus: [{department: market, prompt: {text: x, file: '/abs/menu'}}]\n",
     r"ivr.yaml: ivr.menus\[0\].prompt.file: '/abs/menu' is not a sound file name"),
    ("ivr:\n  fastagi: {port: 70000}\n", r"ivr.yaml: ivr.fastagi.port: Input should be less than or equal to 65535"),
    ("ivr:\n  fastagi: {prot: 4573}\n", r"ivr.yaml: ivr.fastagi.prot: Extra inputs are not permitted"),
    ("ivr:\n  timeout: 0\n", r"ivr.yaml: ivr.timeout: Input should be greater than 0"),
    ("ivr:\n  prompts: {invalid: {text: '', file: x}}\n", r"ivr.yaml: ivr.prompts.invalid.text: String should have at least 1"),
])
def test_a_bad_ivr_section_is_refused_naming_file_key_and_problem(tmp_path, ivr, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(_config(tmp_path, ivr))


def test_the_hours_helper_follows_a_departments_own_windows(tmp_path):
    s = load_settings(_config(tmp_path, None, [("departments.yaml", "    queues: [q-market]\n",
                                                 "    queues: [q-market]\n    business_hours: [\"08:30-12:00\"]\n")]))
    cal = WorkdayCalendar([date(2026, 12, 1)], [], [2026], ZoneInfo("Asia/Shanghai"))
    assert si.business_hours(s, cal, "market", NOW) == (True, "工作日 8:30-12:00")
    assert si.business_hours(s, cal, "market", datetime(2026, 12, 1, 2, 0, tzinfo=timezone.utc))[0] is False
    early = datetime(2026, 11, 30, 0, 45, tzinfo=timezone.utc)             # 08:45 in Shanghai
    assert si.business_hours(s, cal, "market", early) == (True, "工作日 8:30-12:00")
    assert si.business_hours(s, cal, "edu", early) == (False, "工作日 9:00-11:30、13:30-16:30")
    assert re.fullmatch(r"工作日 .*", si.business_hours(s, cal, None, NOW)[1])
