"""Filling in the dashboard's forms the way a browser does, with httpx (for flows that need no JavaScript)."""

from __future__ import annotations

from html.parser import HTMLParser

import httpx


class FormReader(HTMLParser):
    """Collects each form's action, method and named inputs (hidden ones with their values)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, object]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append({"action": attributes.get("action", ""), "method": attributes.get("method", "get"),
                               "inputs": {}, "selects": {}, "buttons": []})  # fmt: skip
        elif self.forms and tag == "input" and "name" in attributes:
            inputs = self.forms[-1]["inputs"]
            assert isinstance(inputs, dict)
            inputs[attributes["name"]] = attributes.get("value", "")
        elif self.forms and tag == "select" and "name" in attributes:
            selects = self.forms[-1]["selects"]
            assert isinstance(selects, dict)
            selects[attributes["name"]] = []
            self._select = attributes["name"]
        elif self.forms and tag == "option":
            selects = self.forms[-1]["selects"]
            assert isinstance(selects, dict)
            selects[self._select].append(attributes.get("value", ""))
        elif self.forms and tag == "button" and "name" in attributes:
            buttons = self.forms[-1]["buttons"]
            assert isinstance(buttons, list)
            buttons.append((attributes["name"], attributes.get("value", "")))


def forms(html: str) -> list[dict[str, object]]:
    reader = FormReader()
    reader.feed(html)
    return reader.forms


def hidden_inputs(html: str, action: str | None = None) -> dict[str, str]:
    """The inputs of the page's first form, or of the form posting to `action`."""
    candidates = [form for form in forms(html) if action is None or form["action"] == action]
    assert candidates, f"no form posting to {action}"
    found = candidates[0]["inputs"]
    assert isinstance(found, dict)
    return dict(found)


def sign_in(client: httpx.Client, email: str, password: str, next_path: str = "/") -> httpx.Response:
    page = client.get("/login", params={"next": next_path})
    fields = hidden_inputs(page.text, "/login")
    return client.post("/login", data={**fields, "email": email, "password": password})
