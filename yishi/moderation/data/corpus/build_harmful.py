"""Build harmful.jsonl from the hand-written seeds in harmful_seeds.txt, deterministically.

Run from anywhere: `python yishi/moderation/data/corpus/build_harmful.py`. Plain Python plus
pypinyin and opencc (both project dependencies); no network. Every family draws from its own
random generator seeded with the family id, so adding a family never changes another's items.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import string
import sys
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import opencc
from pypinyin import Style, lazy_pinyin

HERE = Path(__file__).resolve().parent
SEEDS = HERE / "harmful_seeds.txt"
OUT = HERE / "harmful.jsonl"
SEED = 20261204
MAX_PER_FAMILY = 8
CATEGORIES = (
    "insult", "harassment", "threat", "hate", "sexual", "doxxing", "incitement", "fraud",
    "spam_ad", "gambling", "prompt_injection",
)
LABELS = ("block", "review")
S2T = opencc.OpenCC("s2t")


def split_of(family: str) -> str:
    """The split rule: by family, never by item."""
    bucket = int(hashlib.sha1(family.encode("utf-8")).hexdigest(), 16) % 100
    return "test" if bucket < 20 else "dev" if bucket < 36 else "train"


# ---------------------------------------------------------------- slot fillers (all fictional)

SLOTS: dict[str, list[str]] = {
    "name": ["老王", "张阿姨", "那个姓刘的", "李姐", "小陈", "赵老师", "孙大爷", "周哥", "吴姐",
             "那个姓马的", "老郑", "钱阿姨", "何老板", "那个姓黄的", "冯师傅", "杨老头"],
    "bldg": ["3栋", "5号楼", "12幢", "B座", "7号楼", "2期9栋", "16栋", "C座", "1号楼", "8幢"],
    "unit": ["1单元", "2单元", "3单元", "东单元", "西单元"],
    "room": ["1502", "603", "801", "1201", "302", "2204", "704", "1103", "501", "901"],
    "floor": ["15楼", "6楼", "顶楼", "2楼", "11楼", "楼下", "楼上"],
    "car": ["那辆白色宝马", "黑色奥迪", "红色比亚迪", "那台特斯拉", "银色大众", "那辆灰色理想",
            "白色丰田", "蓝色小电驴", "那辆黑色埃尔法", "红色MINI"],
    "pet": ["泰迪", "金毛", "柯基", "那条黑狗", "边牧", "二哈", "比熊", "那只大白狗", "柴犬",
            "那只黄猫"],
    "girl": ["1202那个小姑娘", "楼下那个穿瑜伽裤的", "新搬来的那个女的", "3栋那个女业主",
             "物业前台那个妹子", "天天遛狗那个少妇", "健身房那个女的", "对门那个小媳妇"],
    "estate": ["翠湖苑", "阳光花园", "锦绣江南", "金桂园", "云栖里", "和美家园", "滨江一号",
               "梧桐郡", "康乐新村", "紫荆苑"],
    "prop": ["锦华物业", "康居物业", "悦居物业", "恒安物业", "嘉园物业", "安居物业服务中心"],
    "amount": ["88", "200", "500", "1288", "3000", "800", "168", "2000", "5888", "300"],
    "big": ["5万", "20万", "10万", "50万", "3万", "8万"],
    "fee": ["物业费", "电费", "燃气费", "水费", "停车费", "宽带费"],
    "time": ["晚上十点", "明早七点", "今晚", "后天下午", "周六早上", "半夜12点", "明天中午"],
    "kidtime": ["下午四点半", "四点十分", "五点", "三点四十", "下午4点"],
    "school": ["实验小学", "阳光幼儿园", "二小", "育才小学", "外国语小学", "小区对面幼儿园"],
    "work": ["区中心医院", "街口那家银行", "星河科技园", "市一中", "万达三楼那家美容院",
             "开发区那个厂", "区税务局", "对面超市"],
    "platform": ["抖音", "快手", "拼多多", "淘宝", "美团", "京东", "小红书"],
    "casino": ["鸿运国际", "金鼎娱乐", "财神到", "皇朝国际", "星辉娱乐", "大发彩", "888棋牌",
               "富贵棋牌", "天下彩"],
    "prov": ["河南", "东北", "安徽", "江西", "湖南", "外地", "四川", "山东", "广西", "甘肃"],
    "gender": ["女的", "女司机", "娘们", "老娘们"],
    "item": ["蜂蜜", "土鸡蛋", "面膜", "保健酒", "减肥茶", "红参", "洗洁精", "车厘子"],
}


def _rand_phone(rng: random.Random) -> str:
    return rng.choice(["170", "171"]) + "".join(rng.choice(string.digits) for _ in range(8))


def _rand_wx(rng: random.Random) -> str:
    head = rng.choice(["wy", "lily", "mm", "xx", "sh", "vip", "kf", "jj", "ab", "tt", "zy"])
    mid = rng.choice(["_", "", "-", "_kf", "666", "88", "zz"])
    return head + mid + "".join(rng.choice(string.ascii_lowercase + string.digits)
                                for _ in range(rng.randint(4, 7)))


def _rand_qq(rng: random.Random) -> str:
    return str(rng.randint(1, 9)) + "".join(rng.choice(string.digits)
                                            for _ in range(rng.randint(7, 9)))


def _rand_url(rng: random.Random) -> str:
    word = rng.choice(["wyfw", "dianfei", "gov-jd", "sq-tz", "jf95", "tuikuan", "wuye",
                       "dfkj", "pay-ok", "zwfw", "ssjf", "kf-help"])
    tld = rng.choice([".top", ".xyz", ".cc", ".vip", ".icu", ".shop", ".cn.com"])
    path = "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(6))
    scheme = rng.choice(["http://", "https://", ""])
    return f"{scheme}{word}{rng.randint(1, 99)}{tld}/{path}"


def _id_check(body: str) -> str:
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    total = sum(int(d) * w for d, w in zip(body, weights, strict=True))
    return "10X98765432"[total % 11]


def _rand_id(rng: random.Random) -> str:
    region = rng.choice(["110105", "310104", "440106", "510107", "330106", "420111", "320102"])
    year = rng.randint(1955, 2004)
    month = rng.randint(1, 12)
    day = rng.randint(1, 28)
    body = f"{region}{year}{month:02d}{day:02d}{rng.randint(0, 999):03d}"
    return body + _id_check(body)


def _rand_card(rng: random.Random) -> str:
    digits = [int(c) for c in "6217" + "".join(rng.choice(string.digits) for _ in range(14))]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    digits.append((10 - total % 10) % 10)
    return "".join(map(str, digits))


def _rand_plate(rng: random.Random) -> str:
    prov = rng.choice("沪京粤苏浙川鄂湘鲁豫")
    letter = rng.choice("ABCDEFGHJK")
    tail = "".join(rng.choice(string.digits) for _ in range(5))
    if rng.random() < 0.5:  # most plates carry a letter or two among the digits
        pos = rng.randrange(5)
        tail = tail[:pos] + rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") + tail[pos + 1:]
    return f"{prov}{letter}{rng.choice(['', '·'])}{tail}"


def _rand_code(rng: random.Random) -> str:
    return "".join(rng.choice(string.digits) for _ in range(6))


GENERATED = {
    "phone": _rand_phone, "wx": _rand_wx, "qq": _rand_qq, "url": _rand_url, "idno": _rand_id,
    "card": _rand_card, "plate": _rand_plate, "code": _rand_code,
}
SLOT_RE = re.compile(r"\{([a-z]+)\}")
ENC_RE = re.compile(r"\{(b64|hex|urlenc)\|([^{}]*)\}")


def fill(text: str, rng: random.Random) -> str:
    """Fill slots; encode {b64|...}, {hex|...}, {urlenc|...} payloads."""

    def enc(m: re.Match[str]) -> str:
        kind, payload = m.group(1), m.group(2)
        raw = payload.encode("utf-8")
        if kind == "b64":
            return base64.b64encode(raw).decode("ascii")
        if kind == "hex":
            return raw.hex()
        return urllib.parse.quote(payload)

    chosen: dict[str, str] = {}

    def slot(m: re.Match[str]) -> str:
        key = m.group(1)
        if key in chosen:  # the same slot twice in one message names the same thing
            return chosen[key]
        if key in SLOTS:
            value = rng.choice(SLOTS[key])
        elif key in GENERATED:
            value = GENERATED[key](rng)
        else:
            return m.group(0)
        chosen[key] = value
        return value

    return SLOT_RE.sub(slot, ENC_RE.sub(enc, text)).replace("的的", "的")


# ---------------------------------------------------------------- evasion transforms

# Term -> spellings people use to slip past filters (homophones, letters, split characters).
HOMOPHONES: dict[str, list[str]] = {
    "傻逼": ["煞笔", "傻B", "沙比", "傻哔", "sb"], "傻子": ["傻孑", "shǎ子"],
    "妈的": ["马的", "嘛的", "🐴的"], "你妈": ["尼玛", "你🐴", "泥马", "你女马"],
    "他妈": ["他马", "塔玛", "他🐴"], "操": ["草", "艹", "cao"], "滚": ["衮", "gun"],
    "垃圾": ["辣鸡", "拉圾", "lj"], "废物": ["费物", "废勿"], "脑残": ["脑蚕", "nc"],
    "智障": ["制杖", "zz"], "畜生": ["畜牲", "出生"], "贱人": ["剑人", "jian人"],
    "婊子": ["表子", "B子"], "狗东西": ["苟东西", "🐶东西"], "去死": ["去4", "去sǐ"],
    "弄死": ["弄4", "nong死"], "杀": ["沙", "💀"], "砍死": ["坎死", "砍4"],
    "打死": ["打4", "da死"], "毒死": ["读死", "毒4"], "放火": ["放🔥", "放伙"],
    "烧了": ["🔥了", "烧le"], "微信": ["薇信", "威信", "VX", "wx", "徽信"],
    "加微": ["加薇", "➕V", "+v", "加威"], "加我": ["➕我", "家我"], "链接": ["琏接", "链jie"],
    "退款": ["退kuan", "蜕款"], "刷单": ["刷dan", "唰单"], "兼职": ["兼只", "jian职"],
    "贷款": ["带款", "daikuan"], "赌博": ["du博", "堵博"], "博彩": ["搏彩", "bo彩"],
    "彩票": ["菜票", "采票"], "充值": ["冲值", "充zhi"], "下注": ["下住", "xia注"],
    "约炮": ["约🔫", "约pao", "约跑"], "色情": ["se情", "涩情"], "裸聊": ["luo聊", "裸liao"],
    "上门服务": ["上门fu务", "上门扶务"], "发票": ["发漂", "fa票"], "银行卡": ["银h卡", "yin行卡"],
    "验证码": ["验证吗", "yan证码"], "身份证": ["身份zheng", "身分证"], "电话": ["电化", "📞"],
    "女的": ["女滴", "女di"], "残废": ["残费", "cf"], "乡巴佬": ["乡8佬", "乡巴老"],
    "骗子": ["piàn子", "马扁子"], "妓女": ["技女", "ji女"], "鸡": ["🐔", "机"],
    "打断": ["打duan", "打锻"], "等着": ["等zhe", "等著"], "小心": ["小xin", "晓心"],
    "物业": ["勿业", "wu业"], "砸": ["咂", "za"], "堵门": ["睹门", "du门"],
    "忽略": ["乎略", "hu略"], "指令": ["指另", "zhi令"], "系统": ["系tong", "细统"],
    "提示词": ["提示辞", "ti示词"], "狗": ["🐶", "苟"], "猪": ["🐷", "zhu"], "死": ["4", "sǐ"],
}
SPLIT_CHARS = {"妈": "女马", "奶": "女乃", "炮": "火包", "骗": "马扁", "赌": "贝者",
               "枪": "木仓", "婊": "女表", "嫖": "女票", "奸": "女干"}
EMOJI = {"妈": "🐴", "狗": "🐶", "猪": "🐷", "火": "🔥", "钱": "💰", "死": "💀", "刀": "🔪",
         "炸": "💣", "车": "🚗", "加": "➕", "鸡": "🐔", "电话": "📞", "牛": "🐮", "蛇": "🐍"}
TYPOS = {"的": "得", "在": "再", "已经": "以经", "做": "作", "再": "在", "那": "哪", "账": "帐",
         "候": "侯", "象": "像", "像": "象", "吗": "嘛"}
DIALECT = {  # Mandarin -> regional wording (粤 / 东北 / 四川)
    "什么": ["咩", "啥", "啥子"], "不要": ["唔好", "别"], "他": ["佢"], "你": ["你", "侬"],
    "很": ["老", "贼", "好"], "没有": ["冇", "没得"], "厉害": ["犀利", "嘚瑟"],
    "傻": ["虎", "憨"], "是": ["系"], "看": ["睇"], "吃": ["食"], "一下": ["一哈"],
}
SYMBOLS = ["*", ".", "-", "|", "_", "~", "/", "、", "💢", "😊", "✨", " "]
SINGLE_TERMS = set("骗赌约嫖毒刀血灭宰揍打死婊骚鸡淫黄")
TERMS = sorted(set(HOMOPHONES) | SINGLE_TERMS, key=lambda t: (-len(t), t))
# Ordinary chat openers and closers: they must not add meaning (no threat, no innuendo).
PREFIXES = ["@所有人 ", "各位邻居，", "说句实话，", "刚看到群里说的，", "[捂脸]", "哈哈哈 ",
            "我就说一句，", "转发：", "【重要】", "家人们，", "唉，", "老铁们 ",
            "说实话 ", "真是受够了，", "emmm ", "大家好，", "@物业管家 ", "顺便说一下，"]
SUFFIXES = ["[微笑]", "，大家评评理", "!!!", "。。。", "[旺柴]", "，就这样", "[呲牙]",
            " 🙄", "，转给需要的人", "～", " [OK]", "？"]
FILLERS = [
    ("今天电梯又坏了一台，物业说下午修好。", "另外谁家快递放错了，在2楼信报箱那。"),
    ("早上好各位，今天降温记得加衣服。", "对了周末小区门口有义诊，老人可以去看看。"),
    ("刚从菜市场回来，今天的菠菜挺便宜的。", "还有，明天停水两小时，大家提前接点水。"),
    ("群里有没有人知道哪家修空调靠谱？", "顺便问下垃圾分类的新规定几号开始。"),
    ("楼下那棵桂花开了好香。", "另外谁的快递被拿错了记得还回来哈。"),
    ("物业通知下周一清洗水箱，", "大家留意一下停水时间，谢谢。"),
    ("孩子学校今天开家长会回来晚了，", "群里那个团购的水果到了吗？"),
]


# Everyday words in the homophone table: respelt by evaders, but not where symbols go.
NEUTRAL = {"物业", "系统", "电话", "女的", "银行卡", "身份证", "验证码", "狗", "猪", "小心"}


def _find_term(text: str, *, multi: bool = False) -> str | None:
    for term in TERMS:
        if term in text and term not in NEUTRAL and (len(term) > 1 or not multi):
            return term
    return None


def ev_homophone(text: str, rng: random.Random) -> str | None:
    keys = [k for k in HOMOPHONES if k in text]
    if not keys:
        return None
    for key in rng.sample(keys, k=min(len(keys), rng.randint(1, 2))):
        text = text.replace(key, rng.choice(HOMOPHONES[key]), 1)
    return text


def ev_pinyin(text: str, rng: random.Random) -> str | None:
    term = _find_term(text, multi=True)
    if term is None or not re.search(r"[\u4e00-\u9fff]", term):
        return None
    style = rng.choice(["full", "initials", "full"])
    if style == "initials":
        repl = "".join(lazy_pinyin(term, style=Style.FIRST_LETTER))
    else:
        repl = "".join(lazy_pinyin(term))
    return text.replace(term, repl, 1)


def ev_symbols(text: str, rng: random.Random) -> str | None:
    term = _find_term(text)
    if term is None or len(term) < 2:
        return None
    sym = rng.choice(SYMBOLS)
    return text.replace(term, sym.join(term), 1)


def ev_spacing(text: str, rng: random.Random) -> str | None:
    if len(text) > 40:
        return None
    return " ".join(ch for ch in text if not ch.isspace())


def ev_fullwidth(text: str, rng: random.Random) -> str | None:
    if not re.search(r"[A-Za-z0-9]", text):
        return None
    return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in text)


def ev_traditional(text: str, rng: random.Random) -> str | None:
    out = S2T.convert(text)
    return out if out != text else None


def ev_split(text: str, rng: random.Random) -> str | None:
    keys = [k for k in SPLIT_CHARS if k in text]
    if not keys:
        return None
    key = rng.choice(keys)
    return text.replace(key, SPLIT_CHARS[key], 1)


def ev_emoji(text: str, rng: random.Random) -> str | None:
    keys = [k for k in EMOJI if k in text]
    if not keys:
        return None
    for key in rng.sample(keys, k=min(len(keys), 2)):
        text = text.replace(key, EMOJI[key], 1)
    return text


def ev_typo(text: str, rng: random.Random) -> str | None:
    keys = [k for k in TYPOS if k in text]
    if not keys:
        return None
    key = rng.choice(keys)
    return text.replace(key, TYPOS[key], 1)


def ev_dialect(text: str, rng: random.Random) -> str | None:
    keys = [k for k in DIALECT if k in text and DIALECT[k] != [k]]
    if not keys:
        return None
    for key in rng.sample(keys, k=min(len(keys), 2)):
        options = [o for o in DIALECT[key] if o != key]
        text = text.replace(key, rng.choice(options), 1)
    return text


def ev_voice(text: str, rng: random.Random) -> str | None:
    marks = [m.start() for m in re.finditer(r"[，。！？!?,、；;]", text)]
    if marks and rng.random() < 0.5:  # a spoken filler where the speaker paused
        cut = rng.choice(marks)
        text = text[:cut] + rng.choice(["那个", "就是", "呃", "然后"]) + text[cut:]
    if re.search(r"[A-Za-z0-9][.:/=][A-Za-z0-9]", text):  # links and payloads are not spoken
        return None
    out = re.sub(r"[，。！？!?,、；;：~～]+", "", text)
    out = re.sub(r"(?<![A-Za-z0-9])\s+|\s+(?![A-Za-z0-9])", "", out)  # keep spaces between words
    if out == text or len(out) < 6:
        return None
    return out


def ev_digits(text: str, rng: random.Random) -> str | None:
    runs = re.findall(r"\d{7,}", text)
    if not runs:
        return None
    run = runs[0]
    cn = "零一二三四五六七八九"
    style = rng.choice(["space", "cn", "dash", "mixed"])
    if style == "space":
        new = " ".join(run[i:i + 4] for i in range(0, len(run), 4))
    elif style == "dash":
        new = "-".join(run[i:i + 3] for i in range(0, len(run), 3))
    elif style == "cn":
        new = "".join(cn[int(d)] for d in run)
    else:
        new = "".join(cn[int(d)] if rng.random() < 0.5 else d for d in run)
    return text.replace(run, new, 1)


def ev_long(text: str, rng: random.Random) -> str | None:
    if len(text) > 140:
        return None
    head, tail = rng.choice(FILLERS)
    stop = "" if text.endswith(("。", "！", "!", "？", "?", ".")) else "。"
    return f"{head}{text}{stop}{tail}"


TRANSFORMS = {
    "homophone": ev_homophone, "pinyin": ev_pinyin, "symbols": ev_symbols,
    "spacing": ev_spacing, "fullwidth": ev_fullwidth, "traditional": ev_traditional,
    "split_char": ev_split, "emoji": ev_emoji, "typo": ev_typo, "dialect": ev_dialect,
    "voice": ev_voice, "digits": ev_digits, "long_context": ev_long,
}
# Draw weights: the crisp character tricks most often, the wholesale rewrites less.
WEIGHTS = {"homophone": 5, "pinyin": 3, "symbols": 4, "spacing": 1, "fullwidth": 2,
           "traditional": 2, "split_char": 2, "emoji": 2, "typo": 1, "dialect": 1, "voice": 2,
           "digits": 3, "long_context": 3}


# ---------------------------------------------------------------- seeds

@dataclass
class Family:
    family: str
    label: str
    categories: list[str]
    seeds: list[tuple[str, list[str]]] = field(default_factory=list)  # (text, evasions)
    apply: str | None = None  # a transform every item of the family goes through


HEADER_RE = re.compile(
    r"^@\s+(\S+)\s+(block|review)\s+(\S+)(?:\s+ev=(\S+))?(?:\s+apply=(\S+))?\s*$"
)
LINE_EV_RE = re.compile(r"^%([a-z_,]+)%\s*")


def read_seeds(path: Path) -> list[Family]:
    """Parse the seed file: `@ family label cat1,cat2 [ev=...]` headers, one seed per line."""
    families: list[Family] = []
    seen: set[str] = set()
    current: Family | None = None
    default_ev: list[str] = []
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = HEADER_RE.match(line)
        if m:
            fam, label, cats = m.group(1), m.group(2), m.group(3).split(",")
            bad = [c for c in cats if c not in CATEGORIES]
            if bad or fam in seen or not 1 <= len(cats) <= 2:
                raise SystemExit(f"{path.name}:{lineno}: bad header {line!r}")
            seen.add(fam)
            default_ev = m.group(4).split(",") if m.group(4) else []
            apply = m.group(5)
            if apply is not None and apply not in TRANSFORMS:
                raise SystemExit(f"{path.name}:{lineno}: unknown transform {apply!r}")
            cats = sorted(cats, key=CATEGORIES.index)  # one order for the same pair
            current = Family(fam, label, cats, apply=apply)
            families.append(current)
            continue
        if line.startswith("@"):
            raise SystemExit(f"{path.name}:{lineno}: malformed header {line!r}")
        if current is None:
            raise SystemExit(f"{path.name}:{lineno}: seed before any header")
        ev = list(default_ev)
        lm = LINE_EV_RE.match(line)
        if lm:
            ev = lm.group(1).split(",")
            line = line[lm.end():]
        current.seeds.append((line.replace("\\n", "\n"), ev))
    return families


def decorate(text: str, rng: random.Random) -> str:
    """Wrap with an ordinary chat prefix or suffix (meaning unchanged)."""
    r = rng.random()
    if r < 0.3:
        return rng.choice(PREFIXES) + text
    if r < 0.55:
        return text.rstrip("。") + rng.choice(SUFFIXES)
    return text


def expand(fam: Family) -> list[tuple[str, list[str]]]:
    """Up to MAX_PER_FAMILY (text, evasions) items: every seed once, then variations."""
    rng = random.Random(f"{SEED}:{fam.family}")
    target = min(MAX_PER_FAMILY, 2 * len(fam.seeds) + 3)
    out: list[tuple[str, list[str]]] = []
    seen: set[str] = set()

    def add(text: str, ev: list[str]) -> None:
        if fam.apply is not None and fam.apply not in ev:
            changed = TRANSFORMS[fam.apply](text, rng)
            if changed is None:
                raise SystemExit(f"{fam.family}: {fam.apply} does not apply to {text!r}")
            text, ev = changed, [*ev, fam.apply]
        text = text.strip()
        if text and text not in seen and len(out) < target:
            seen.add(text)
            out.append((text, ev))

    for seed, ev in fam.seeds:
        add(fill(seed, rng), ev)
    names = list(TRANSFORMS)
    tries = 0
    while len(out) < target and tries < 60:
        tries += 1
        seed, ev = rng.choice(fam.seeds)
        text = fill(seed, rng)
        if rng.random() < 0.5:
            name = rng.choices(names, weights=[WEIGHTS[n] for n in names])[0]
            if name in ev:
                continue
            changed = TRANSFORMS[name](text, rng)
            if changed is None or changed == text:
                continue
            if name != "long_context" and rng.random() < 0.3:
                changed = decorate(changed, rng)
            add(changed, [*ev, name])
        else:
            add(decorate(text, rng), ev)
    return out


def build() -> list[dict[str, object]]:
    """All items in seed-file order with sequential ids."""
    rows: list[dict[str, object]] = []
    texts: set[str] = set()
    for fam in read_seeds(SEEDS):
        for text, ev in expand(fam):
            if text in texts:
                continue
            texts.add(text)
            rows.append({
                "id": f"h-{len(rows) + 1:06d}", "text": text, "label": fam.label,
                "categories": fam.categories, "family": fam.family,
                "split": split_of(fam.family), "evasions": ev,
            })
    return rows


def counts_markdown(rows: list[dict[str, object]]) -> str:
    """The README's counts section: per category, label, split and evasion."""

    def row(name: str, items: list[dict[str, object]]) -> str:
        label = Counter(str(r["label"]) for r in items)
        split = Counter(str(r["split"]) for r in items)
        fams = len({r["family"] for r in items})
        cells = [len(items), label["block"], label["review"], split["train"], split["dev"],
                 split["test"], fams]
        return f"| {name} | " + " | ".join(f"{c:,}" for c in cells) + " |"

    lines = ["| category | items | block | review | train | dev | test | families |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [row(c, [r for r in rows if c in r["categories"]]) for c in CATEGORIES]  # type: ignore[operator]
    lines.append(row("**all items**", rows))
    pairs = Counter(" + ".join(r["categories"]) for r in rows if len(r["categories"]) == 2)  # type: ignore[arg-type]
    evaded = sum(1 for r in rows if r["evasions"])
    review = sum(1 for r in rows if r["label"] == "review")
    ev = Counter(e for r in rows for e in r["evasions"])  # type: ignore[attr-defined]
    lines += [
        "",
        f"Items with two categories: {sum(pairs.values())} ("
        + ", ".join(f"{k} {v}" for k, v in pairs.most_common()) + "), so the category rows add"
        " up to more than the total.",
        "",
        f"Labels: {len(rows) - review:,} block ({(len(rows) - review) / len(rows):.1%}), "
        f"{review:,} review ({review / len(rows):.1%}).",
        "",
        f"Items with at least one evasion: {evaded:,} of {len(rows):,} "
        f"({evaded / len(rows):.1%}); by evasion: "
        + ", ".join(f"`{k}` {v}" for k, v in ev.most_common()) + ".",
    ]
    return "\n".join(lines)


def main() -> None:
    rows = build()
    with OUT.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    fams = read_seeds(SEEDS)
    print(f"{len(rows)} items, {len(fams)} families, {sum(len(f.seeds) for f in fams)} seeds")
    print(counts_markdown(rows))
    readme = HERE / "README.md"
    if "--readme" in sys.argv and readme.exists():
        text = readme.read_text(encoding="utf-8")
        start, end = "<!-- counts:start -->\n", "<!-- counts:end -->"
        head, rest = text.split(start, 1)
        readme.write_text(head + start + counts_markdown(rows) + "\n" + end
                          + rest.split(end, 1)[1], encoding="utf-8")
    cat = Counter(c for r in rows for c in r["categories"])  # type: ignore[attr-defined]
    low = [c for c in CATEGORIES if cat[c] < 80]
    if low:
        raise SystemExit(f"categories under 80 items: {low}")


if __name__ == "__main__":
    main()
