"""Tenant self-service (docs/tenant.md): access links (``links``), what a tenant's page
shows (``view``), gateway orders and their one payment each (``orders``), the settle
service for orders and refunds the gateway has not told us about (``settle``), refunds back
through the gateway (``refunds``) and the daily check against the gateway's bill
(``bill_check``)."""
