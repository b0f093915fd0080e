"""The notifier: alarms and meter events to people over SMS, voice, e-mail, WeChat, webhooks.

Pure core (no I/O): :mod:`.model` (inputs), :mod:`.ids`, :mod:`.rules` (who hears what),
:mod:`.templates` (zh/en texts), :mod:`.policy` (backoff, quiet hours, rate limits,
urgency). Edges: one adapter per channel (:mod:`.sms`, :mod:`.voice`, :mod:`.email`,
:mod:`.wechat`, :mod:`.webhook`), :mod:`.store` (PostgreSQL), :mod:`.service` (the consume
and deliver loops) and :mod:`.cli`. Contracts: docs/contracts.md, "Notifications".
"""
