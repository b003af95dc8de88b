"""The dashboard: sign-in, the consent page's shell, the API access panel and its admin JSON API.

Everything here uses the signed session cookie; unsafe methods need the session's CSRF token (a form field on pages,
the X-CSRF-Token header on the JSON API)."""
