"""The request guard in front of the workspace API: finds and verifies the presented credential, cheaply.

Modules: headers (which header holds the credential), cache (verification outcomes by keyed digest), throttle (failed
verifications), ratelimits (per-credential moving windows in process), redis_windows (the same windows shared in
Redis), limiter (which of the two decides), addresses (allow-lists), usage (batched last_used_at), changes (the polled
change notes; `store.change_listener` hears them at once on PostgreSQL), guard (the Guard that composes them) and
middleware (the ASGI side). Argon2 runs in `token_broker.hashing_pool`, keyed by `token_broker.sources`; the store's
after-commit hook (`store.database`) makes the guard forget a credential whose change committed on this instance.
"""
