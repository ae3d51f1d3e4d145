"""docs/checks.md, generated from the check registry: ``dcp-agent list --markdown`` prints it.

What the page says of a check lives on the check (one home per fact): its code, id, title, severity and IAM
actions, its function's docstring (what it judges beyond the title), ``cure`` (what ``dcp-agent fix`` does for
it) and ``blind`` (what it cannot see, or only approximates); a group's introduction is its module's
docstring. A text several checks share is one object there, and is printed once, at the first of them; the
others point to it. A test fails when the committed page differs from :func:`render`
(``.venv/bin/dcp-agent list --markdown > docs/checks.md`` rewrites it), as for the shipped policies.
"""

from __future__ import annotations

import inspect
import re
import sys

from agent.registry import GROUPS, Check, all_checks

REGENERATE = ".venv/bin/dcp-agent list --markdown > docs/checks.md"

INTRO = f"""\
# The checks

<!-- Generated from the check registry (agent/registry.py, agent/checks/*.py) by `dcp-agent list --markdown`:
edit the checks, then run `{REGENERATE}`. A test fails when this page is stale. -->

Every check `dcp-agent check` runs, group by group, in the order it reports them. For each: its severity,
the checks it runs after, the IAM actions its reads need (the shipped policy, `dcp-agent policy`, grants
them), what it judges, what `dcp-agent fix` does for it, and what it cannot see or only approximates. A
check with no fix of its own is listed by `dcp-agent fix` for a person, with the fix its finding names
(see [`dcp-agent fix`](agent.md#fix)).
"""


def _md(text: str) -> str:
    """A docstring's reST literals as Markdown code, its lines joined into paragraphs."""
    paragraphs = [" ".join(line.strip() for line in p.splitlines()) for p in re.split(r"\n\s*\n", text.strip())]
    return "\n\n".join(p.replace("``", "`") for p in paragraphs if p)


def _linked(text: str, codes: set[str], own: str) -> str:
    """Other checks' codes in a text as links to their sections (code spans and links left alone)."""
    parts = re.split(r"(`[^`]*`|\[[^\]]*\]\([^)]*\))", text)
    return "".join(p if p.startswith(("`", "[")) else re.sub(
        r"\b([LCIRSQNZKFM]\d\d)\b", lambda m: f"[{m[1]}](#{m[1].lower()})" if m[1] in codes and m[1] != own
        else m[1], p) for p in parts)


def _anchor(c: Check) -> str:
    return c.code.lower()


def _link(c: Check) -> str:
    return f"[{c.code}](#{_anchor(c)})"


def _group_intro(letter: str, checks: list[Check]) -> str:
    module = sys.modules[checks[0].func.__module__]
    doc = inspect.getdoc(module) or ""
    intro = _md(re.sub(rf"^{letter}: ", "", doc))
    return intro[:1].upper() + intro[1:]


def _section(c: Check, by_id: dict[str, Check], first: dict[str, Check]) -> str:
    out = [f"### {c.code} `{c.id}` {{#{_anchor(c)}}}", "", f"**{c.title}.**" + (f" {_md(c.judges)}" if c.judges else "")]
    facts = [f"**Severity:** {c.severity}"]
    if c.opt_in:
        facts.append("**Opt-in:** runs only when named with `--only` or listed in the settings' `enable`")
    if c.needs:
        facts.append("**Runs after:** " + ", ".join(_link(by_id[n]) for n in c.needs))
    facts.append("**IAM actions:** " + (", ".join(f"`{a}`" for a in c.actions) if c.actions else "none"))
    out += ["", ". ".join(facts) + "."]
    if c.cure:
        shared = first.setdefault(c.cure, c)
        out += ["", f"**Fix:** {_md(c.cure)}" if shared is c else f"**Fix:** as {_link(shared)}'s."]
    own, also = [], []
    for text in c.blind:
        shared = first.setdefault(text, c)
        if shared is c:
            own.append(_md(text))
        elif shared not in also:
            also.append(shared)
    if also:
        links = [_link(s) for s in also]
        own.append(("Also" if own else "As") + " noted at " + (" and ".join(links) if len(links) < 3
                                                             else ", ".join(links[:-1]) + " and " + links[-1]) + ".")
    if own:
        out += ["", f"**Cannot see, or approximates:** {own[0]}", *(f"\n{p}" for p in own[1:])]
    codes = {c.code for c in by_id.values()}
    head, body = out[:2], out[2:]
    return "\n".join([*head, *(_linked(line, codes, c.code) for line in body)])


def render() -> str:
    """The whole page, exactly as docs/checks.md holds it."""
    checks = all_checks()
    by_id = {c.id: c for c in checks}
    first: dict[str, Check] = {}
    parts = [INTRO]
    for letter, name in GROUPS.items():
        group = [c for c in checks if c.code[0] == letter]
        if not group:
            continue
        parts.append(f"## {letter}: {name} {{#{letter.lower()}}}\n\n{_group_intro(letter, group)}\n")
        rows = ["| code | id | severity | title |", "|---|---|---|---|"]
        rows += [f"| {_link(c)} | `{c.id}` | {c.severity} | {c.title} |" for c in group]
        parts.append("\n".join(rows) + "\n")
        parts += [_section(c, by_id, first) + "\n" for c in group]
    return "\n".join(parts)
