"""Webhooks to partners: where targets may point (`ssrf`), how deliveries are signed (`signing`), the pinned HTTP
client (`transport`) and the delivery worker (`worker`). The rules about hooks and deliveries in the store are in
`token_broker.services.hooks` and `token_broker.services.deliveries`."""
