"""Call the workspace API with a workspace API key: who am I, then shorten a link.

TOKEN_BROKER_URL=http://127.0.0.1:8000 NIM_API_KEY=nim_key_... python examples/call_with_key.py https://example.com/
"""

from __future__ import annotations

import os
import sys

import httpx


def main() -> int:
    base = os.environ.get("TOKEN_BROKER_URL", "http://127.0.0.1:8000")
    key = os.environ.get("NIM_API_KEY")
    if not key:
        print("set NIM_API_KEY to a key from `token-broker key create` or the API access panel", file=sys.stderr)
        return 2
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=10) as client:
        me = client.get("/v1/me")
        if me.status_code != 200:
            print(f"{me.status_code} {me.json()['error']}: {me.json()['message']}", file=sys.stderr)
            return 1
        account_id = me.json()["account_id"]
        print(f"key {me.json()['credential']['id']} of workspace {me.json()['workspace']['name']} ({account_id})")
        if len(sys.argv) > 1:
            link = client.post(f"/v1/workspaces/{account_id}/links", json={"destination": sys.argv[1]})
            if link.status_code != 201:
                print(f"{link.status_code} {link.json()['error']}: {link.json()['message']}", file=sys.stderr)
                return 1
            print(f"{base}/r/{link.json()['slug']} -> {link.json()['destination']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
