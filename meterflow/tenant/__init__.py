"""The tenants' pages and the gateways' notification endpoints, under ``/t``
(docs/tenant.md): ``gateways`` (the configured gateways from the settings), ``texts``
(zh-CN and English), ``router`` (thin handlers), ``templates/`` and ``static/`` (every
asset served from here, none from a CDN)."""
