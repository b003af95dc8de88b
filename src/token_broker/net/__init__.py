"""Pure rules about the outside network, below the services: where a webhook target may point (`ssrf`) and how a
delivery is signed and its secret sealed (`signing`). The HTTP client and the worker that use them are in
`token_broker.webhooks`."""
