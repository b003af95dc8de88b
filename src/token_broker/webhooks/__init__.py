"""Webhooks to partners: the pinned HTTP client (`transport`), the delivery worker (`delivery_worker`) and its own
command line (`worker`, run as `python -m token_broker.webhooks.worker`). Where targets may point and how deliveries
are signed are in `token_broker.net`; the rules about hooks and deliveries in the store are in
`token_broker.services.webhook_subscriptions` and `token_broker.services.deliveries`."""
