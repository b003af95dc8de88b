"""The OAuth 2.0 authorization server: the only package that imports authlib.

authlib has no Starlette server integration; `server` is the thin adapter (requests in, responses out, run in a
worker thread), `grants` and `endpoints` hold our rules for codes, refresh, revocation and introspection, and
`consent` is the authorize endpoint with its consent page.
"""
