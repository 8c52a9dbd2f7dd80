"""`report.html`: the report as one self-contained page (plots embedded, no network), for a browser.

It is written from the same lines as report.md (harness/report.py), so the two never say different things:
the report's Markdown is a small fixed subset (headings, paragraphs, `-` lists, tables, `**bold**`,
`` `code` ``, images of the run folder), rendered here with every piece of text HTML-escaped first. Tables
sort by a click on a column header (numbers as numbers, empty cells last); images become data: URIs.
Machine facts (machine.json) and the measurement settings (the journal) come at the end.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Sequence
from pathlib import Path

from targets.fileio import atomic_write_text

REPORT_HTML = "report.html"

_STYLE = """
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;
color:#1d1d1f}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ddd}h3{margin-top:1.5em}
table{border-collapse:collapse;margin:1em 0;font-size:13px;display:block;overflow-x:auto}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f3f3f5;cursor:pointer;user-select:none}th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}
td:first-child,th:first-child{text-align:left}tr:nth-child(even) td{background:#fafafa}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}code{background:#f3f3f5;padding:0 3px;border-radius:3px}
table.facts{display:table}table.facts td{text-align:left;white-space:normal;word-break:break-word}table.facts td:first-child{white-space:nowrap}
li{margin:.25em 0}details{margin:1em 0}pre{background:#f7f7f9;padding:.7em;overflow-x:auto;font-size:12px}
"""

# Sorting: numbers (the first number in a cell: "1.23", "4,515", "98.06%", "1.74x") as numbers, text as
# text, empty cells ("", "-", "–") always last; a second click reverses.
_SCRIPT = r"""
function cellKey(td){const t=td.textContent.trim();if(t===''||t==='-'||t==='\u2013')return null;
const m=t.replace(/,/g,'').match(/^[-+]?\d*\.?\d+(e[-+]?\d+)?/i);return m?parseFloat(m[0]):t.toLowerCase();}
function sortBy(th){const table=th.closest('table'),body=table.tBodies[0],i=th.cellIndex;
const dir=th.getAttribute('aria-sort')==='ascending'?'descending':'ascending';
for(const h of table.tHead.rows[0].cells)h.removeAttribute('aria-sort');th.setAttribute('aria-sort',dir);
const rows=Array.from(body.rows);rows.sort((a,b)=>{const x=cellKey(a.cells[i]),y=cellKey(b.cells[i]);
if(x===null&&y===null)return 0;if(x===null)return 1;if(y===null)return -1;
const c=(typeof x===typeof y)?(x<y?-1:x>y?1:0):(typeof x==='number'?-1:1);
return dir==='ascending'?c:-c;});
for(const r of rows)body.appendChild(r);}
document.querySelectorAll('table.sortable th').forEach(th=>th.addEventListener('click',()=>sortBy(th)));
"""


def _inline(text: str) -> str:
    """Escape, then `code` and **bold** (the only inline marks the report uses)."""
    out = html.escape(text, quote=True)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _cells(line: str) -> list[str]:
    parts = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [p.strip().replace("\\|", "|") for p in parts]


def _image(folder: Path, title: str, name: str) -> str:
    path = folder / name
    if "/" in name or not path.is_file():
        return f"<p>{html.escape(title)} (missing: {html.escape(name)})</p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(title, quote=True)}" src="data:image/png;base64,{data}"></figure>'


def markdown_to_html(lines: Sequence[str], folder: Path) -> str:
    """The report's Markdown subset as HTML; tables get the `sortable` class."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif m := re.match(r"^(#{1,4}) (.*)$", line):
            level = len(m.group(1))
            out.append(f"<h{level}>{_inline(m.group(2))}</h{level}>")
            i += 1
        elif m := re.match(r"^!\[([^\]]*)\]\(([^)]+)\)$", line.strip()):
            out.append(_image(folder, m.group(1), m.group(2)))
            i += 1
        elif line.startswith("|") and i + 1 < len(lines) and re.match(r"^\|[-|: ]+\|$", lines[i + 1].strip()):
            head = "".join(f'<th scope="col">{_inline(c)}</th>' for c in _cells(line))
            i += 2
            body = []
            while i < len(lines) and lines[i].startswith("|"):
                body.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _cells(lines[i])) + "</tr>")
                i += 1
            out.append(f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not re.match(r"^(#|\||- |!\[)", lines[i]):
                para.append(_inline(lines[i]))
                i += 1
            out.append("<p>" + " ".join(para) + "</p>")
    return "\n".join(out)


def _facts(folder: Path) -> str:
    """Machine and settings, each target's and each measurement's, as the files hold them."""
    parts = ["<h2>Machine and settings</h2>"]
    machine = folder / "machine.json"
    if machine.is_file():
        try:
            targets = json.loads(machine.read_text(encoding="utf-8")).get("targets") or {}
        except (OSError, ValueError):
            targets = {}
        for name, facts in targets.items():
            rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_short(v))}</td></tr>"
                           for k, v in facts.items())
            parts.append(f"<details open><summary>machine: {html.escape(name)}</summary>"
                         '<table class="facts"><thead><tr><th>fact</th><th>value</th></tr></thead>'
                         f"<tbody>{rows}</tbody></table>"
                         "</details>")
    settings = _settings(folder)
    if settings:
        text = "\n".join(json.dumps(s, sort_keys=True) for s in settings)
        parts.append(f"<details><summary>measurement settings ({len(settings)})</summary><pre>{html.escape(text)}"
                     "</pre></details>")
    return "\n".join(parts)


def _short(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 300 else text[:300] + " …"


def _settings(folder: Path) -> list[dict]:
    from harness.journal import read_journal

    seen: list[dict] = []
    try:
        records = read_journal(folder).records
    except Exception:  # noqa: BLE001 - a report without a journal still renders (e.g. made from CSVs alone)
        return seen
    for rec in records:
        s = {"target": rec.get("target"), **(rec.get("settings") or {})}
        if rec.get("settings") is not None and s not in seen:
            seen.append(s)
    return seen


def write_html(folder: Path, lines: Sequence[str]) -> Path:
    """report.html beside report.md, from the same lines."""
    title = next((ln[2:] for ln in lines if ln.startswith("# ")), "edgebench report")
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
            "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>\n"
            f"{markdown_to_html(lines, folder)}\n{_facts(folder)}\n<script>{_SCRIPT}</script></body></html>\n")
    path = folder / REPORT_HTML
    atomic_write_text(path, page)
    return path
