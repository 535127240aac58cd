"""Spam, advertising and fraud patterns. Scores add up from independent cues (a contact handle,
a link, money-making promises, gambling, 'safe account' scams); anti-fraud warnings damp them."""

from __future__ import annotations

import re

from yishi.moderation.normalise import Normalised
from yishi.moderation.schemas import Signal

# Over the compact view (no spaces or punctuation, lower case, simplified).
CONTACT_RE = re.compile(
    r"(加|\+|添加|联系|找|私)(我)?(微信|薇信|威信|维信|v信|vx|wx|v|q|qq|扣扣|企鹅|tg|电报)"
    r"|(微信|vx|wx|qq|v)(号)?[:：]?[a-z0-9_\-]{5,}"
    r"|私聊|私信我|私我|详询|咨询热线|联系电话|电话见头像|微信同号|电话同微信|扫码|二维码|链接在|点链接"
)
URL_RE = re.compile(r"https?://|www\.|\b[a-z0-9\-]+\.(com|cn|net|top|xyz|vip|cc|me|info)\b|t\.cn/")
STRONG_AD = re.compile(
    r"日赚|日入|躺赚|日结|月入(过万|上万|\d)|时薪|兼职(招|刷|打字|手工|在家)|在家(兼职|赚钱|办公)"
    r"|刷单|返利|返现|无抵押|秒批|秒到账|低息|免息贷|网贷|套现|提额|代开(发票|票)|发票代开"
    r"|办假证|代办证件|假证|刻章|代孕|黑卡|高回报|稳赚|保本高息|包赚|翻倍|一本万利|引流|加粉|涨粉"
    r"|不用本人|无需本人|本人不用到场|包过|包下证|转发.{0,10}(群|朋友圈|好友).{0,8}(送|领|得|免费)"
    r"|集赞.{0,6}(送|领)|高价回收|回收.{0,4}(购物卡|加油卡|话费卡|礼品卡|购物券|茅台)|当天结"
    r"|代理加盟|招代理|诚招|招商加盟|零成本|免费领取|免费送|扫码领|扫码(进|加)群|进群领"
    r"|减肥药|瘦身|增高|丰胸|壮阳|伟哥|私彩"
)
GAMBLING = re.compile(
    r"博彩|菠菜|百家乐|时时彩|六合彩|赌场|赌博网|网赌|棋牌(游戏|室)?(上分|充值)|上下分|(上分|下分)(加|找|微信|秒|客服)|彩票(群|计划|导师)"
    r"|澳门(赌|葡京|威尼斯人)|真人(荷官|娱乐)|老虎机|彩金|首充"
)
FRAUD = re.compile(
    r"安全账户|(转|汇)(到|入|给)?(指定|安全|这个)(账户|账号|卡)|验证码(发|告诉|给)"
    r"|把验证码|屏幕共享|共享屏幕|涉嫌洗钱|洗钱案|配合调查|资金核查|冻结.{0,4}(解冻|转账|缴)"
    r"|解冻费|保证金|手续费.{0,6}(到账|放款|提现)|先(交|付|转).{0,8}(钱|费|押金|定金)|刷流水|注销校园贷"
    r"|点击链接.{0,8}(领取|补贴|退款|理赔|认证)|(补贴|退款|理赔|退税|赔付)(领取|申请).{0,6}(链接|点击)"
    r"|中奖了|恭喜(您|你).{0,6}(中奖|获得)|领取奖品|快递(丢失|理赔).{0,6}(赔|退)"
    r"|(医保|社保|养老金)卡?(异常|停用|冻结)|账户(异常|冻结)|帮忙(转|打)(点|些)?钱"
    r"|急用钱.{0,6}(转|借)|投资(群|导师|老师带)|内幕消息|带你(赚|投资|炒股|抓)"
    r"|刷单|刷信誉|垫付返|(身份证|银行卡|验证码|密码|卡号|cvv).{0,12}(发给我|告诉我|发我|拍给我|报给我)"
    r"|荐股|抓涨停|牛股|涨停板|稳赚不赔|vip群|会员群.{0,4}免费|信用卡.{0,6}(提现|套现|代还)"
    r"|黑户.{0,4}(也能|也可|可|能)(下|贷|办|借)|不看征信|无视征信|当天(到账|下款)|秒下款|(个人|我的?)收款码"
    r"|转(到|给|入)我(个人|私人)|(免费)?领取价值\d+|价值\d+元.{0,6}(免费|领取|送)"
    r"|(年审|认证|激活|核验|升级).{0,10}(截止|过期|失效|停用)|点击.{0,40}(认证|验证|领取|登记|激活|核验)"
)
WEAK_AD = re.compile(
    r"优惠|特价|低价|打折|折扣|\d折|促销|包邮|代购|批发|微商|面膜|保健品|理财|价格(优惠|实惠|美丽)"
    r"|课程|培训|试听|名额有限|先到先得|限时|秒杀|福利|红包|关注公众号|点赞|助力|砍一刀|投个票|帮我投票"
    r"|招聘|高薪|佣金|提成|加盟|推广|代理|代办|贷款|副业|宝妈|赚零花钱|零投资|有意者|带价|上门服务|专业团队|预约|回收|免费(上门|检测|咨询|体验)"
    r"|仅限今天|今日特惠|家政|开荒|保洁服务|搬家服务|美缝|防水补漏|管道疏通|开锁换锁"
    r"|本小区已做|已服务|欢迎(咨询|订购|选购)|量大|团购价|包安装|维修(各种|家电|管道)"
)
WARNING_RE = re.compile(
    r"提醒|谨防|小心|注意|千万(别|不要)|不要(相信|信|转|点)|别(信|转|点|上当)|骗子|诈骗|骗局|上当"
    r"|报警|反诈|举报|冒充|假的|是骗|防骗|警惕"
)


def detect(norm: Normalised) -> list[Signal]:
    """Spam, ad and fraud signals (the span covers the strongest cue)."""
    text = norm.compact.text
    if len(text) < 4:
        return []
    light = norm.light.text
    signals: list[Signal] = []
    warning = WARNING_RE.search(text) is not None
    damp = 0.3 if warning else 1.0

    contact_c = CONTACT_RE.search(text)
    contact = contact_c or _PHONE.search(light.translate(_NUMERALS))
    url = URL_RE.search(light)
    strong = STRONG_AD.search(text)
    gamble = GAMBLING.search(text)
    fraud = FRAUD.search(text)
    weak = [m.group(0) for m in WEAK_AD.finditer(text)]

    ad_score = 0.0
    cue: re.Match[str] | None = None
    reasons: list[str] = []
    if strong:
        ad_score = 0.75
        cue = strong
        reasons.append(f"广告用语：{strong.group(0)}")
    if gamble:
        ad_score = max(ad_score, 0.9)
        cue = gamble
        reasons.append(f"赌博推广：{gamble.group(0)}")
    if weak:
        # One sales word is everyday talk; several together (plus a contact) read as an ad.
        ad_score = max(ad_score, 0.9 if strong else min(0.15 + 0.15 * len(set(weak)), 0.8))
        reasons.append("推销用语：" + "、".join(sorted(set(weak))[:3]))
    if ad_score and (contact or url):
        # A ladder: one sales word and a phone is a neighbour selling a pram (allowed), two is
        # worth a look, three or more is a commercial ad.
        bonus = 0.25 if strong or gamble or len(set(weak)) >= 2 else 0.1
        ad_score = min(ad_score + bonus, 0.98)
        reasons.append("附带联系方式或链接")
    elif contact and url:
        ad_score = max(ad_score, 0.55)
        reasons.append("联系方式加链接")
    if ad_score >= 0.3:  # the policy decides; communities may review lower scores
        span = cue or contact_c or (weak and WEAK_AD.search(text)) or None
        start, end = _orig_span(norm, span)
        signals.append(
            Signal(
                category="spam_ad",
                score=ad_score * damp,
                start=start,
                end=end,
                source="spam",
                reason="；".join(reasons),
            )
        )
    if fraud:
        score = 0.9 * damp
        if strong or gamble:
            ad_signal = [x for x in signals if x.category == "spam_ad"]
            if not ad_signal:
                signals.append(
                    Signal(
                        category="spam_ad", score=0.85 * damp, source="spam", reason="诈骗类推广"
                    )
                )
        if contact or url:
            score = min(0.98, score + 0.05)
        start, end = norm.compact.span(*fraud.span())
        signals.append(
            Signal(
                category="fraud",
                score=score,
                start=start,
                end=end,
                source="spam",
                reason=f"疑似诈骗：{fraud.group(0)}",
            )
        )
    if url and not warning and ad_score < 0.5 and not fraud and _shortener(url.group(0), light):
        start, end = norm.light.span(*url.span())
        signals.append(
            Signal(
                category="spam_ad", score=0.55, start=start, end=end, source="spam", reason="短链接"
            )
        )
    return signals


_PHONE = re.compile(r"(?<!\d)1[3-9]\d[\s\-]?\d{4}[\s\-]?\d{4}(?!\d)")
_NUMERALS = str.maketrans("零〇一二三四五六七八九幺", "001234567891")


def _shortener(found: str, light: str) -> bool:
    return any(s in light for s in ("t.cn/", "dwz.cn", "bit.ly", "url.cn", "suo.im"))


def _orig_span(norm: Normalised, match: object) -> tuple[int, int]:
    if isinstance(match, re.Match):
        return norm.compact.span(*match.span())
    return (0, 0)
