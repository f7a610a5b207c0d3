"""axe-core in a Playwright page: what the page, as shown now, breaks of WCAG 2.1 AA; and what
Chromium's accessibility tree (what a screen reader reads) offers to focus.

axe-core ships inside the ``axe-playwright-python`` package (``axe.min.js``) and is injected
into the page under test: nothing is fetched, and the page's CSP, which would refuse a request
to any other origin, stays on.
"""

from __future__ import annotations

import time
from typing import Any

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page

#: WCAG 2.0 and 2.1, levels A and AA, and axe's best practices (a main landmark, all content in
#: landmarks, no empty table header...), which the dashboard keeps too.
RULES = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]

_AXE = Axe()


def violations(page: Page) -> str:
    """axe-core's report of each rule of ``RULES`` the page breaks as it is shown now, with the
    elements that break it; "" when it breaks none. Only what is rendered is checked: hidden
    parts are checked in the states that show them."""
    results = _AXE.run(page, options={"runOnly": {"type": "tag", "values": RULES}, "resultTypes": ["violations"]})
    return results.generate_report() if results.violations_count else ""


def focusable_in(page: Page, role: str, name: str,
                 awaited: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    """What a screen reader is told it can focus (Tab to, activate) inside the element of ``role``
    named ``name`` in Chromium's accessibility tree, in order: each one's role and name. The tree
    follows the page a moment later: it is read again (for 5 s at most) until it has the element
    and, given ``awaited``, until the element offers that (the caller asserts what it got)."""
    deadline = time.monotonic() + 5
    while True:
        reached = _focusable_in(page, role, name)
        if time.monotonic() > deadline or (reached is not None and awaited in (None, reached)):
            assert reached is not None, f"no {role} named {name!r}"
            return reached
        page.wait_for_timeout(100)


def _focusable_in(page: Page, role: str, name: str) -> list[tuple[str, str]] | None:
    """focusable_in, read once; None when the tree has no such element (yet)."""
    session = page.context.new_cdp_session(page)
    try:
        nodes = session.send("Accessibility.getFullAXTree")["nodes"]
    finally:
        session.detach()
    found = [n for n in nodes if _value(n, "role") == role and _value(n, "name") == name]
    if not found:
        return None
    by_id = {node["nodeId"]: node for node in nodes}

    def inside(node: dict[str, Any]) -> list[tuple[str, str]]:
        reached: list[tuple[str, str]] = []
        for child in (by_id[i] for i in node.get("childIds", []) if i in by_id):
            if not child.get("ignored") and any(p["name"] == "focusable" and p["value"].get("value")
                                                for p in child.get("properties", [])):
                reached.append((_value(child, "role"), _value(child, "name")))
            reached += inside(child)
        return reached

    return inside(found[0])


def chromium_name(page: Page, selector: str) -> str:
    """The name Chromium's accessibility tree gives the first element ``selector`` finds (what a
    screen reader reads for it), not Playwright's own computation of it."""
    session = page.context.new_cdp_session(page)
    try:
        document = session.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
        found = session.send("DOM.querySelector", {"nodeId": document, "selector": selector})["nodeId"]
        assert found, f"nothing is {selector}"
        nodes = session.send("Accessibility.getPartialAXTree", {"nodeId": found, "fetchRelatives": False})["nodes"]
    finally:
        session.detach()
    return _value(nodes[0], "name")


def chromium_text(page: Page, selector: str) -> str:
    """The text Chromium's accessibility tree holds inside the first element ``selector`` finds
    (its text nodes, in order): what a screen reader reads of an element that takes no name from
    its content (a ``dd``), generated content included unless its alternative text leaves it out."""
    session = page.context.new_cdp_session(page)
    try:
        document = session.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
        found = session.send("DOM.querySelector", {"nodeId": document, "selector": selector})["nodeId"]
        assert found, f"nothing is {selector}"
        backend = session.send("DOM.describeNode", {"nodeId": found})["node"]["backendNodeId"]
        nodes = session.send("Accessibility.getFullAXTree")["nodes"]
    finally:
        session.detach()
    by_id = {node["nodeId"]: node for node in nodes}

    def text(node: dict[str, Any]) -> str:
        if not node.get("ignored") and _value(node, "role") == "StaticText":
            return _value(node, "name")
        return "".join(text(by_id[i]) for i in node.get("childIds", []) if i in by_id)

    element = next((node for node in nodes if node.get("backendDOMNodeId") == backend), None)
    assert element is not None, f"{selector} is not in the accessibility tree"
    return text(element)


def _value(node: dict[str, Any], key: str) -> str:
    """A property of a node of Chromium's accessibility tree (its ``role``, ``name``) as text."""
    return str(node.get(key, {}).get("value", ""))
