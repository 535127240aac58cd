"""Proposals drafted from summaries, their status with updates, and their voting rules.

Owners' joint decisions follow Civil Code art. 278 (民法典第二百七十八条):
- participation: owners whose exclusive parts (专有部分) make up two thirds or more of the total
  area AND who are two thirds or more of all owners take part in the vote;
- matters (6) raising maintenance funds, (7) rebuilding or altering buildings and facilities,
  (8) changing the use of common parts or running a business on them: agreed by owners holding
  three quarters or more of the participating area AND three quarters or more of the
  participating owners;
- every other matter, (1)–(5) and (9): agreed by owners holding more than half (过半数) of the
  participating area AND more than half of the participating owners.
"以上" includes the bound and "过半数" excludes it (民法典第一千二百五十九条: 以上 includes 本数,
超过 does not), so two thirds and three quarters are `>=`, half is `>`. All arithmetic is exact
(fractions). Owners are counted once however many units they hold (最高法建筑物区分所有权解释
第九条); areas come from the recorded units.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, Literal

from sqlmodel import Session, col, select

from yishi.core.auth import Actor
from yishi.core.clock import utcnow
from yishi.core.config import Settings
from yishi.core.errors import Forbidden, Invalid, NotFound
from yishi.core.models import Role
from yishi.deliberation import places, responsibility, summaries, threads
from yishi.deliberation.models import (
    OwnerUnit,
    Proposal,
    ProposalBallot,
    ProposalStatus,
    ProposalUpdate,
    SummaryRecord,
)
from yishi.deliberation.schemas import ThreadSummary

Majority = Literal["half", "two_thirds", "three_quarters"]

TWO_THIRDS = Fraction(2, 3)
THREE_QUARTERS = Fraction(3, 4)
HALF = Fraction(1, 2)


@dataclass(frozen=True)
class VotingRule:
    """How a proposal type is decided."""

    label: str
    owners_only: bool  # an art. 278 owners' decision, counted by recorded units
    majority: Majority
    quorum: bool  # art. 278 participation (two thirds of area and of owners)
    article: str = ""


# Proposal types: the art. 278 matters by their item, plus a residents' consultation.
PROPOSAL_TYPES: dict[str, VotingRule] = {
    "consultation": VotingRule("居民意见征询（参与者过半数同意）", False, "half", False),
    "rules_of_procedure": VotingRule("制定和修改业主大会议事规则", True, "half", True, "第一项"),
    "management_statute": VotingRule("制定和修改管理规约", True, "half", True, "第二项"),
    "committee_election": VotingRule("选举或更换业主委员会成员", True, "half", True, "第三项"),
    "property_service": VotingRule("选聘和解聘物业服务企业或其他管理人", True, "half", True,
                                   "第四项"),
    "use_maintenance_fund": VotingRule("使用建筑物及其附属设施的维修资金", True, "half", True,
                                       "第五项"),
    "raise_maintenance_fund": VotingRule("筹集建筑物及其附属设施的维修资金", True,
                                         "three_quarters", True, "第六项"),
    "rebuild": VotingRule("改建、重建建筑物及其附属设施", True, "three_quarters", True, "第七项"),
    "common_area_use": VotingRule("改变共有部分的用途或者利用共有部分从事经营活动", True,
                                  "three_quarters", True, "第八项"),
    "other_major": VotingRule("有关共有和共同管理权利的其他重大事项", True, "half", True,
                              "第九项"),
    # Where the community's own rules (议事规则/管理规约) demand more than art. 278's floor.
    "owners_two_thirds": VotingRule("业主共同决定（议事规则要求三分之二以上同意）", True,
                                    "two_thirds", True),
}

ALLOWED: dict[str, set[str]] = {
    ProposalStatus.draft: {ProposalStatus.voting},
    ProposalStatus.voting: {ProposalStatus.adopted, ProposalStatus.rejected},
    ProposalStatus.adopted: {ProposalStatus.in_progress},
    ProposalStatus.rejected: set(),
    ProposalStatus.in_progress: {ProposalStatus.done},
    ProposalStatus.done: set(),
}
STATUS_LABELS = {"draft": "草案", "voting": "表决中", "adopted": "已通过", "rejected": "未通过",
                 "in_progress": "实施中", "done": "已完成"}


def _area(value: float) -> Fraction:
    # Areas are recorded to the centiare; going through str keeps 89.35 exact.
    return Fraction(Decimal(str(value)))


def _meets(part: Fraction, whole: Fraction, majority: Majority) -> bool:
    if whole == 0:
        return False
    share = part / whole
    if majority == "half":
        return share > HALF  # 过半数: strictly more than half
    if majority == "two_thirds":
        return share >= TWO_THIRDS  # 三分之二以上: the bound itself counts
    return share >= THREE_QUARTERS


@dataclass(frozen=True)
class Art278Tally:
    """The counts art. 278 looks at, and what they decide."""

    total_area: Fraction
    total_owners: int
    voted_area: Fraction
    voted_owners: int
    agree_area: Fraction
    agree_owners: int
    majority: Majority

    @property
    def quorum_area(self) -> bool:
        return self.total_area > 0 and self.voted_area / self.total_area >= TWO_THIRDS

    @property
    def quorum_owners(self) -> bool:
        return self.total_owners > 0 and Fraction(self.voted_owners, self.total_owners) >= \
            TWO_THIRDS

    @property
    def agreed_area(self) -> bool:
        return _meets(self.agree_area, self.voted_area, self.majority)

    @property
    def agreed_owners(self) -> bool:
        return _meets(Fraction(self.agree_owners), Fraction(self.voted_owners), self.majority)

    @property
    def passed(self) -> bool:
        return self.quorum_area and self.quorum_owners and self.agreed_area and self.agreed_owners

    def as_dict(self) -> dict[str, Any]:
        return {
            "total_area": float(self.total_area), "total_owners": self.total_owners,
            "voted_area": float(self.voted_area), "voted_owners": self.voted_owners,
            "agree_area": float(self.agree_area), "agree_owners": self.agree_owners,
            "majority": self.majority, "quorum_area": self.quorum_area,
            "quorum_owners": self.quorum_owners, "agreed_area": self.agreed_area,
            "agreed_owners": self.agreed_owners, "passed": self.passed,
        }


def art278_tally(
    *,
    units: list[tuple[str, float]],
    ballots: dict[str, str],
    majority: Majority,
) -> Art278Tally:
    """Art. 278 counts from (owner, area) units and owner → agree|disagree|abstain ballots."""
    area_of: dict[str, Fraction] = {}
    for owner, area in units:
        area_of[owner] = area_of.get(owner, Fraction(0)) + _area(area)
    voters = [o for o in ballots if o in area_of]
    agree = [o for o in voters if ballots[o] == "agree"]
    return Art278Tally(
        total_area=sum(area_of.values(), Fraction(0)),
        total_owners=len(area_of),
        voted_area=sum((area_of[o] for o in voters), Fraction(0)),
        voted_owners=len(voters),
        agree_area=sum((area_of[o] for o in agree), Fraction(0)),
        agree_owners=len(agree),
        majority=majority,
    )


# --- units (recorded areas) -------------------------------------------------------------------


def record_unit(*, session: Session, actor: Actor, unit: str, owner_id: str,
                area_m2: float) -> OwnerUnit:
    """Staff: record (or correct) a unit's owner and exclusive area."""
    actor.require(Role.staff)
    if area_m2 <= 0:
        raise Invalid("专有部分面积必须大于 0")
    row = session.exec(select(OwnerUnit).where(OwnerUnit.unit == unit.strip())).first()
    row = row or OwnerUnit(unit=unit.strip(), owner_id=owner_id, area_m2=area_m2)
    row.owner_id = owner_id.strip()
    row.area_m2 = float(round(Decimal(str(area_m2)), 2))
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def get_units(*, session: Session) -> list[OwnerUnit]:
    """Every recorded unit."""
    return list(session.exec(select(OwnerUnit).order_by(col(OwnerUnit.unit))).all())


# --- proposals ------------------------------------------------------------------------------


def get(*, session: Session, proposal_id: int) -> Proposal:
    """One proposal or NotFound."""
    proposal = session.get(Proposal, proposal_id)
    if proposal is None:
        raise NotFound(f"没有编号为 {proposal_id} 的提案")
    return proposal


def get_all(*, session: Session, status: str | None = None) -> list[Proposal]:
    """Proposals, newest first, optionally by status."""
    query = select(Proposal)
    if status:
        query = query.where(Proposal.status == status)
    return list(session.exec(query.order_by(col(Proposal.id).desc())).all())


def get_updates(*, session: Session, proposal_id: int) -> list[ProposalUpdate]:
    """A proposal's status changes and progress notes, in order."""
    return list(session.exec(select(ProposalUpdate).where(
        ProposalUpdate.proposal_id == proposal_id).order_by(col(ProposalUpdate.id))).all())


def _rule(proposal_type: str) -> VotingRule:
    rule = PROPOSAL_TYPES.get(proposal_type)
    if rule is None:
        raise Invalid(f"未知提案类型：{proposal_type}",
                      hint="可选：" + "、".join(PROPOSAL_TYPES))
    return rule


def _latest_summary(session: Session, thread_id: int) -> SummaryRecord | None:
    return session.exec(select(SummaryRecord).where(SummaryRecord.thread_id == thread_id)
                        .order_by(col(SummaryRecord.id).desc())).first()


_CN_DIGITS = "零一二三四五六七八九十"


def _plain(claim: Any) -> str:
    """The statement a claim rests on, in the residents' own words (no figures, no group names)."""
    return (claim.quotes[0].text if claim.quotes else claim.text).strip().rstrip("。")


def draft_from_summary(
    *,
    session: Session,
    actor: Actor,
    summary_id: int | None = None,
    thread_id: int | None = None,
    proposal_type: str = "consultation",
    title: str | None = None,
    settings: Settings | None = None,
) -> Proposal:
    """Staff: a draft proposal (责任表、时间表、任务表) from a thread's checked summary."""
    actor.require(Role.staff)
    rule = _rule(proposal_type)
    record: SummaryRecord | None
    if summary_id is not None:
        record = session.get(SummaryRecord, summary_id)
        if record is None:
            raise NotFound(f"没有编号为 {summary_id} 的总结")
    elif thread_id is not None:
        record = _latest_summary(session, thread_id)
        if record is None:
            summaries.summarise_thread(session=session, actor=actor, thread_id=thread_id)
            record = _latest_summary(session, thread_id)
    else:
        raise Invalid("请指定总结编号或议题编号")
    assert record is not None and record.id is not None
    summary = ThreadSummary.model_validate(record.content)
    thread = threads.get_thread(session=session, thread_id=record.thread_id)

    category = places.infer_category(thread.title + thread.question) or "other"
    entries = responsibility.get_list(session=session, settings=settings)
    lead = entries.get(category) or entries.get("other")
    parties: list[dict[str, Any]] = []
    if rule.owners_only:
        parties.append({"party": "业委会", "role": "组织业主共同决定、公示表决结果"})
    if lead is not None and lead.party not in {p["party"] for p in parties}:
        parties.append({"party": lead.party, "role": "牵头落实"})
    if "居委会" not in {p["party"] for p in parties}:
        parties.append({"party": "居委会", "role": "指导监督、协调各方"})

    opposed_claims = [c for c in summary.consensus if c.text.startswith("多数参与者反对")]
    consensus = [c for c in summary.consensus if c not in opposed_claims]
    agreed = [_plain(c) for c in consensus[:5]]
    opposed = [_plain(c) for c in opposed_claims[:5]]
    disputed = [(_plain(c), c.cites) for c in summary.divisive[:2]]
    options = []
    if agreed:
        options.append({"key": "A", "text": "落实大家普遍认同的做法：" + "；".join(agreed),
                        "cites": [r for c in consensus[:5] for r in c.cites]})
    for i, (text, cites) in enumerate(disputed):
        intro = "在方案一的基础上，同时实行：" if agreed else "实行："
        options.append({"key": chr(ord("B") + i), "text": f"{intro}{text}",
                        "cites": cites})
    options.append({"key": "Z", "text": "暂不作改变", "cites": []})
    for n, option in enumerate(options, start=1):
        option["label"] = f"方案{_CN_DIGITS[n]}" if option["key"] != "Z" else "维持现状"

    background = [f"讨论的问题：{thread.question}",
                  f"共有 {summary.participation.participants} 位居民参与讨论。"]
    if agreed:
        background.append("大家普遍认同：" + "；".join(agreed) + "。")
    if opposed:
        background.append("大家普遍不赞成：" + "；".join(opposed) + "。")
    if disputed:
        background.append("意见还不一致的地方：" + "；".join(t for t, _c in disputed) + "。")

    start = utcnow()
    days = [("公示征求意见", 7), ("表决", 14), ("公布结果", 3), ("组织实施", 30)]
    timetable, elapsed = [], 0
    for step, span in days:
        elapsed += span
        timetable.append({"step": step, "due": (start + timedelta(days=elapsed)).date()
                          .isoformat()})
    owner = lead.party if lead else "居委会"
    tasks = [{"task": step.text, "party": owner, "due": timetable[-1]["due"],
              "status": "todo", "cites": step.cites} for step in summary.next_steps[:5]]
    tasks.insert(0, {"task": "公示提案并组织表决（" + rule.label + "）",
                     "party": parties[0]["party"], "due": timetable[1]["due"],
                     "status": "todo", "cites": []})

    proposal = Proposal(
        thread_id=thread.id, summary_id=record.id,
        title=title or f"关于“{thread.title}”的提案",
        background="\n".join(background), options=options, responsible_parties=parties,
        timetable=timetable, tasks=tasks, proposal_type=proposal_type,
        created_by=actor.user_id, created_at=start, updated_at=start,
    )
    session.add(proposal)
    session.flush()
    assert proposal.id is not None
    session.add(ProposalUpdate(proposal_id=proposal.id, actor_id=actor.user_id,
                               to_status=ProposalStatus.draft, note="由议题总结生成草案"))
    session.commit()
    session.refresh(proposal)
    return proposal


def edit(*, session: Session, actor: Actor, proposal_id: int, changes: dict[str, Any]) -> Proposal:
    """Staff: change a draft's fields."""
    actor.require(Role.staff)
    proposal = get(session=session, proposal_id=proposal_id)
    if proposal.status != ProposalStatus.draft:
        raise Invalid("只有草案可以修改", hint="表决开始后请以进展说明的形式补充")
    allowed = {"title", "background", "options", "responsible_parties", "timetable", "tasks",
               "proposal_type"}
    for key, value in changes.items():
        if key not in allowed or value is None:
            continue
        if key == "proposal_type":
            _rule(value)
        setattr(proposal, key, value)
    proposal.updated_at = utcnow()
    session.add(proposal)
    session.commit()
    session.refresh(proposal)
    return proposal


def change_status(*, session: Session, actor: Actor, proposal_id: int, to_status: str,
                  note: str = "") -> Proposal:
    """Staff: move a proposal along draft → voting → adopted|rejected → in_progress → done."""
    actor.require(Role.staff)
    proposal = get(session=session, proposal_id=proposal_id)
    if to_status not in ProposalStatus.__members__:
        raise Invalid(f"未知状态：{to_status}")
    if to_status not in ALLOWED[ProposalStatus(proposal.status)]:
        raise Invalid(f"提案当前为“{STATUS_LABELS[proposal.status]}”，不能改为"
                      f"“{STATUS_LABELS[to_status]}”")
    if proposal.status == ProposalStatus.voting:
        raise Invalid("表决结果由计票决定", hint="请使用“结束表决”计票")
    return _set_status(session, actor, proposal, to_status, note)


def _set_status(session: Session, actor: Actor, proposal: Proposal, to_status: str,
                note: str) -> Proposal:
    assert proposal.id is not None
    old = proposal.status
    proposal.status = to_status
    proposal.updated_at = utcnow()
    session.add(proposal)
    session.add(ProposalUpdate(proposal_id=proposal.id, actor_id=actor.user_id,
                               from_status=old, to_status=to_status, note=note))
    session.commit()
    session.refresh(proposal)
    return proposal


def add_update(*, session: Session, actor: Actor, proposal_id: int, note: str) -> ProposalUpdate:
    """Staff: a progress note on a proposal."""
    actor.require(Role.staff)
    get(session=session, proposal_id=proposal_id)
    if not note.strip():
        raise Invalid("进展说明不能为空")
    row = ProposalUpdate(proposal_id=proposal_id, actor_id=actor.user_id, note=note.strip())
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def cast_ballot(*, session: Session, actor: Actor, proposal_id: int, choice: str
                ) -> ProposalBallot:
    """Vote on a proposal in voting; owners' matters only take recorded owners' ballots."""
    if choice not in {"agree", "disagree", "abstain"}:
        raise Invalid("请选择 同意 / 反对 / 弃权")
    proposal = get(session=session, proposal_id=proposal_id)
    if proposal.status != ProposalStatus.voting:
        raise Invalid(f"提案当前为“{STATUS_LABELS[proposal.status]}”，不在表决期")
    rule = _rule(proposal.proposal_type)
    if rule.owners_only and session.exec(
        select(OwnerUnit).where(OwnerUnit.owner_id == actor.user_id)
    ).first() is None:
        raise Forbidden("此事项由业主共同决定，您的账号还没有登记房屋",
                        hint="请携带产权证明到居委会或业委会登记")
    row = session.exec(select(ProposalBallot).where(
        ProposalBallot.proposal_id == proposal_id, ProposalBallot.voter_id == actor.user_id
    )).first() or ProposalBallot(proposal_id=proposal_id, voter_id=actor.user_id, choice=choice)
    row.choice = choice
    row.at = utcnow()
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def tally(*, session: Session, proposal_id: int) -> dict[str, Any]:
    """The current count under the proposal's voting rule."""
    proposal = get(session=session, proposal_id=proposal_id)
    rule = _rule(proposal.proposal_type)
    ballots = {b.voter_id: b.choice for b in session.exec(
        select(ProposalBallot).where(ProposalBallot.proposal_id == proposal_id))}
    if rule.owners_only:
        units = [(u.owner_id, u.area_m2) for u in get_units(session=session)]
        counted = art278_tally(units=units, ballots=ballots, majority=rule.majority)
        return {"rule": proposal.proposal_type, "label": rule.label, "article": rule.article,
                **counted.as_dict()}
    agree = sum(1 for c in ballots.values() if c == "agree")
    voted = len(ballots)
    return {"rule": proposal.proposal_type, "label": rule.label, "voted": voted,
            "agree": agree, "disagree": sum(1 for c in ballots.values() if c == "disagree"),
            "abstain": sum(1 for c in ballots.values() if c == "abstain"),
            "passed": _meets(Fraction(agree), Fraction(voted), rule.majority)}


MIN_BALLOTS = 5  # fewer ballots than this earn a warning before the vote is closed


def turnout_warning(count: dict[str, Any]) -> str | None:
    """Why closing the vote now may be premature (no or too few ballots), or None."""
    voted = int(count.get("voted_owners", count.get("voted", 0)))
    if voted == 0:
        return "还没有人投票。现在结束表决，提案将判定为未通过。"
    if "quorum_owners" in count and not (count["quorum_owners"] and count["quorum_area"]):
        return (f"目前只有 {voted} 户业主投票，参与表决的人数或面积还不到三分之二，"
                "现在结束表决，提案将判定为未通过。")
    if voted < MIN_BALLOTS:
        return f"目前只有 {voted} 人投票，结果可能不能代表大家的意见。"
    return None


def close_voting(*, session: Session, actor: Actor, proposal_id: int,
                 confirm_low_turnout: bool = True) -> Proposal:
    """Staff: end the vote; the rule decides adopted or rejected and the count is kept.

    With `confirm_low_turnout=False`, a vote with no or too few ballots is not closed: the
    warning is raised instead, for the caller to show before asking again.
    """
    actor.require(Role.staff)
    proposal = get(session=session, proposal_id=proposal_id)
    if proposal.status != ProposalStatus.voting:
        raise Invalid("提案不在表决期")
    result = tally(session=session, proposal_id=proposal_id)
    warning = turnout_warning(result)
    if warning and not confirm_low_turnout:
        raise Invalid(warning, hint="如确认要结束表决，请勾选“仍然结束表决”后再提交")
    proposal.result = result
    to = ProposalStatus.adopted if result["passed"] else ProposalStatus.rejected
    note = "表决通过" if result["passed"] else "表决未通过"
    return _set_status(session, actor, proposal, to.value, note)
