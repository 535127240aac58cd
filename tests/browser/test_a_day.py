"""One working day in a real browser: a resident reports in /chat, a moderator reviews a held
message, staff assign, reply to a hand-off and close; then a thread with statements and votes
becomes a summary, a proposal, ballots and a tally. Every screen is saved as a screenshot and
checked for raw ids, raw keys and untranslated English words."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from yishi.core import auth as auth_service
from yishi.core.auth import Actor
from yishi.core.db import session_scope
from yishi.core.models import Role
from yishi.deliberation import threads
from yishi.deliberation.models import Issue

from .conftest import SCREENS, Live, problems_on_screen

WAIT = 20  # seconds a page may take to show what the test waits for


def look(driver: Any, name: str) -> str:
    """Save a screenshot and fail on any raw id, raw key or English word on screen."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENS / f"{name}.png"))
    text = driver.find_element(By.TAG_NAME, "body").text
    assert not problems_on_screen(text), (name, problems_on_screen(text))
    return str(text)


def _token(live: Live, name: str, role: Role, external_id: str) -> str:
    with session_scope(live.settings) as session:
        user = auth_service.create(session=session, name=name, role=role,
                                   external_id=external_id)
        assert user.id is not None
        return auth_service.issue_token(session=session, user_id=user.id)


def _login(driver: Any, live: Live, token: str) -> None:
    driver.delete_all_cookies()
    driver.get(live.url + "/console/login")
    box = driver.find_element(By.NAME, "token")
    box.send_keys(token)
    box.submit()
    WebDriverWait(driver, WAIT).until(lambda d: "/login" not in d.current_url)


def _say(driver: Any, text: str) -> str:
    before = len(driver.find_elements(By.CSS_SELECTOR, ".row.bot"))
    box = driver.find_element(By.ID, "t")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)
    WebDriverWait(driver, WAIT).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, ".row.bot")) > before)
    return str(driver.find_elements(By.CSS_SELECTOR, ".row.bot .bubble")[-1].text)


def _submit(driver: Any, css: str) -> None:
    """Click a form's button, accepting its confirmation dialog."""
    driver.execute_script("window.confirm = () => true;")
    page = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.CSS_SELECTOR, css).click()
    WebDriverWait(driver, WAIT).until(_left_document(page))  # the next page has loaded


def _left_document(element: Any) -> Any:
    """Like `staleness_of`, also when chromedriver reports the node as left mid-navigation."""

    def check(_driver: Any) -> bool:
        try:
            element.is_enabled()
        except WebDriverException:  # StaleElementReference, or "does not belong to the document"
            return True
        return False

    return check


def _flash(driver: Any) -> str:
    return str(WebDriverWait(driver, WAIT).until(
        lambda d: d.find_element(By.CSS_SELECTOR, ".flash")).text)


def test_a_working_day(live: Live, browser: Any, tmp_path: Path) -> None:
    d = browser
    moderator = _token(live, "周审核", Role.moderator, "web:mod1")
    staff = _token(live, "张工", Role.staff, "web:staff1")
    admin = _token(live, "李主任", Role.admin, "web:admin1")

    # A resident in the chat simulator: a report, a rude remark that is held, a hand-off.
    d.get(live.url + "/chat")
    chat_tab = d.current_window_handle
    assert "编号" in _say(d, "3栋2单元楼道灯坏了一周了，晚上黑乎乎的")
    held = _say(d, "这家人真是脑残，半夜还在装修")
    assert "管理员" in held
    assert "工作人员" in _say(d, "转人工")
    look(d, "01-resident-chat")

    # The moderator reviews the held message and approves it.
    d.switch_to.new_window("tab")
    _login(d, live, moderator)
    d.get(live.url + "/console/moderation")
    look(d, "02-moderation-queue")
    d.find_element(By.CSS_SELECTOR, ".review-item a[href^='/console/moderation/items/']").click()
    look(d, "03-moderation-item")
    _submit(d, "form[action$='/approve'] button")
    assert "通过" in _flash(d)
    d.get(live.url + "/console/moderation/audit")
    look(d, "04-moderation-audit")

    # Staff take the issue: assign, work on it, resolve and close it.
    _login(d, live, staff)
    d.get(live.url + "/console/issues")
    look(d, "05-issue-board")
    with session_scope(live.settings) as session:
        from sqlmodel import select

        issue_id = session.exec(select(Issue.id)).first()
    d.get(f"{live.url}/console/issues/{issue_id}")
    look(d, "06-issue-detail")
    _submit(d, "form[action$='/assign'] button")
    assert "已派给" in _flash(d)
    for status in ("in_progress", "resolved", "closed"):
        Select(d.find_element(By.ID, "status")).select_by_value(status)
        _submit(d, "form[action$='/status'] button")
        assert "已通知反映人" in _flash(d)
    page = look(d, "07-issue-closed")
    assert "已关闭" in page or "关闭" in page
    assert "处理中 → 处理中" not in page

    # Staff answer the hand-off; the reply reaches the resident's chat.
    d.get(live.url + "/console/failures")
    look(d, "08-handoffs")
    d.find_element(By.CSS_SELECTOR, "form[action$='/reply'] textarea").send_keys(
        "您好，楼道灯明天上午更换，有问题随时找我。")
    _submit(d, "form[action$='/reply'] button.primary")
    assert "已回复" in _flash(d)
    d.switch_to.window(chat_tab)
    WebDriverWait(d, WAIT).until(lambda x: "楼道灯明天上午更换" in x.find_element(
        By.ID, "log").text)
    look(d, "09-resident-gets-reply")
    # Rating a closed issue does not exist yet in the chat: that step is left out.

    # A thread with statements and votes → summary → proposal → ballots → tally.
    d.switch_to.new_window("tab")
    _login(d, live, staff)
    d.get(live.url + "/console/threads")
    d.find_element(By.CSS_SELECTOR, "details summary").click()
    d.find_element(By.ID, "ttitle").send_keys("访客停车")
    d.find_element(By.ID, "tquestion").send_keys("访客车位要不要收费？")
    d.find_element(By.ID, "tstatements").send_keys(
        "访客车位应当收费\n收费收入用于维修道路\n晚上十点后免费\n由业委会监督收费\n"
        "收费前先公示三十天\n外来车辆一律不得进入\n业主车辆优先停放\n收费标准每小时两元")
    _submit(d, "form[action='/console/threads'] button")
    thread_id = int(d.current_url.rstrip("/").rsplit("/", 1)[1])
    rng = random.Random(5)
    with session_scope(live.settings) as session:
        sids = [s.id for s in threads.get_statements(session=session, thread_id=thread_id)]
        for i in range(15):
            for n, sid in enumerate(sids):
                assert sid is not None
                base = (n % 2 == 0) == (i < 8)
                agree = base if rng.random() < 0.9 else not base
                threads.vote(session=session, actor=Actor(user_id=f"wechat_mp:oR{i}"),
                             statement_id=sid, value="agree" if agree else "disagree")
    d.refresh()
    look(d, "10-thread")
    _submit(d, "form[action$='/summarise'] button")
    summary = look(d, "11-summary")
    assert "组" in summary
    _submit(d, "form[action='/console/proposals'] button")
    proposal = look(d, "12-proposal")
    assert "组同意" not in proposal and "%" not in proposal
    proposal_url = d.current_url
    Select(d.find_element(By.ID, "pstatus")).select_by_value("voting")
    _submit(d, "form[action$='/status'] button")

    # The owners' roster, then paper ballots for three owners.
    roster = tmp_path / "名册.csv"
    roster.write_text("房号,姓名,面积,电话\n1-101,陈业主,88.5,13600004444\n"
                      "1-102,林业主,92,13600005555\n1-201,黄业主,88.5,\n", encoding="utf-8")
    d.get(live.url + "/console/owners")
    d.find_element(By.ID, "rfile").send_keys(str(roster))
    _submit(d, "form[action$='/owners/import'] button")
    assert "新增 3 位" in look(d, "13-owners")
    d.get(proposal_url)
    for voter, choice in (("roster:1-101", "agree"), ("roster:1-102", "agree"),
                          ("roster:1-201", "disagree")):
        Select(d.find_element(By.ID, "bvoter")).select_by_value(voter)
        Select(d.find_element(By.ID, "bchoice")).select_by_value(choice)
        _submit(d, "form[action$='/ballots'] button")
        assert "已记录" in _flash(d)
    warned = look(d, "14-before-close")
    assert "只有 3 人投票" in warned
    d.find_element(By.CSS_SELECTOR, "input[name='confirm']").click()
    _submit(d, "form[action$='/close'] button.primary")
    tally = look(d, "15-tally")
    assert "表决已结束，结果：已通过" in tally

    # The pages an admin and staff use around the day.
    _login(d, live, admin)
    d.get(live.url + "/console/users")
    look(d, "16-users")
    d.get(live.url + "/console/documents")
    look(d, "17-documents")
    d.get(live.url + "/console/no-such-page")
    assert "没有这个页面" in look(d, "18-not-found")
    d.get(live.url + "/docs")
    WebDriverWait(d, WAIT).until(lambda x: x.find_elements(By.CSS_SELECTOR, ".swagger-ui .info"))
    d.save_screenshot(str(SCREENS / "19-api-docs.png"))
