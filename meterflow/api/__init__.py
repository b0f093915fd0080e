"""The operators' HTTP API (``meterflow api``): FastAPI app under ``/api/v1``.

``app.create_app`` builds it; each resource group is one router module in ``routers/``;
``auth`` holds the roles and the permission matrix; ``audit`` writes the append-only audit
log in the transaction of each change. Domain rules live outside HTTP (``meterflow.*``).
"""
