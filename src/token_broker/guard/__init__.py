"""The request guard in front of the workspace API: finds and verifies the presented credential, cheaply.

Modules: headers (which header holds the credential), cache (verification outcomes by keyed digest), throttle (failed
verifications), ratelimits (per-credential limits), addresses (allow-lists), usage (batched last_used_at),
guard (the Guard that composes them) and middleware (the ASGI side).
"""
