"""Secret scanning: the endpoint where GitHub (and any other trusted scanner) reports our credentials found in public.

    signatures.py  key sets in GitHub's format, and ECDSA P-256 SHA-256 verification over the raw body; pure
    reporters.py   the trusted reporters' key sets, fetched through an httpx.AsyncClient, cached, refreshed at most
                   once a minute
    reports.py     reading a report's body: the caps, the JSON array, each match's shape; pure
    endpoint.py    POST /secret-scanning/github: size cap, signature, then services/leaks.py, then GitHub's answer

What a match does to the store (revoke, disconnect, notify) is services/leaks.py's job.
"""
