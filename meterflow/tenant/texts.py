"""The tenant page's words, zh-CN first, English second; one key per text."""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "title": {"zh": "我的水电", "en": "My meters"},
    "balance": {"zh": "余额", "en": "Balance"},
    "alarm": {"zh": "余额提醒", "en": "Low-balance level"},
    "alarm0": {"zh": "正常", "en": "normal"},
    "supply": {"zh": "供电/供水", "en": "Supply"},
    "connected": {"zh": "正常供应", "en": "on"},
    "cut_requested": {"zh": "正在断开", "en": "being cut off"},
    "cut_confirmed": {"zh": "已断开", "en": "cut off"},
    "reconnect_requested": {"zh": "正在恢复", "en": "being reconnected"},
    "today": {"zh": "今日用量", "en": "Today"},
    "month": {"zh": "本月用量", "en": "This month"},
    "band": {"zh": "时段", "en": "Band"},
    "units": {"zh": "用量", "en": "Units"},
    "money": {"zh": "金额", "en": "Money"},
    "none": {"zh": "暂无", "en": "none"},
    "entries": {"zh": "最近充值与扣费", "en": "Recent top-ups and charges"},
    "bills": {"zh": "待缴账单", "en": "Open bills"},
    "no_bills": {"zh": "没有待缴账单", "en": "No open bills"},
    "due": {"zh": "缴费截止", "en": "due"},
    "bill_overdue": {"zh": "已逾期", "en": "overdue"},
    "topup": {"zh": "充值", "en": "Top up"},
    "other": {"zh": "其他金额", "en": "Other amount"},
    "pay_wechat": {"zh": "微信支付", "en": "WeChat Pay"},
    "pay_alipay": {"zh": "支付宝", "en": "Alipay"},
    "pay": {"zh": "去支付", "en": "Pay"},
    "no_gateway": {"zh": "暂未开通在线支付", "en": "Online payment is not available"},
    "pending": {"zh": "支付处理中，到账后余额自动更新", "en": "Payment in progress; the balance "
                "updates when it arrives"},
    "orders": {"zh": "我的订单", "en": "My orders"},
    "created": {"zh": "待支付", "en": "waiting"},
    "paid": {"zh": "已支付", "en": "paid"},
    "closed": {"zh": "已关闭", "en": "closed"},
    "signin": {"zh": "微信登录绑定", "en": "Sign in with WeChat"},
    "bound": {"zh": "已绑定微信", "en": "WeChat bound"},
    "link_invalid": {"zh": "链接无效或已过期，请联系物业", "en": "This link is not valid "
                     "or has expired; ask the property office"},
    "topup_kind": {"zh": "充值", "en": "top-up"},
    "charge_kind": {"zh": "扣费", "en": "charge"},
    "refund_kind": {"zh": "退款", "en": "refund"},
    "adjustment_kind": {"zh": "调整", "en": "adjustment"},
    "electricity": {"zh": "电", "en": "Electricity"},
    "water": {"zh": "水", "en": "Water"},
    "sharp": {"zh": "尖", "en": "sharp"},
    "peak": {"zh": "峰", "en": "peak"},
    "flat": {"zh": "平", "en": "flat"},
    "valley": {"zh": "谷", "en": "valley"},
    "all": {"zh": "全部", "en": "all"},
    "lang_other": {"zh": "English", "en": "中文"},
}


def texts(lang: str) -> dict[str, str]:
    """The words of one language (``zh`` unless ``en``)."""
    key = "en" if lang == "en" else "zh"
    return {name: words[key] for name, words in TEXTS.items()}
