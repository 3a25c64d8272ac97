"""Every attribute a submission can reach in rendered HTML is clean, and feedback pages forbid scripts.

- Output metadata: nbconvert's templates print ``width``/``height`` unquoted (``width={{ width }}``), so a
  width of "1 onload=alert(document.domain)//" became an event handler. StripActiveContent validates the
  keys templates print, per MIME type and at the top level, and drops the rest (``filenames``,
  ``isolated``, ...). Checked here for every MIME type through the classic, lab, feedback and formgrade
  templates.
- Cell metadata and attachments: a lexer name, a remove-source flag, non-text tags, attachments that are
  not base64 images, and attachments a markdown cell names but lacks (nbconvert fails the page) are cleaned.
- Feedback pages carry a Content-Security-Policy (course_tools/templates/course_feedback): a page made
  from a notebook that was *not* cleaned still runs none of its scripts in Chromium, while MathJax's
  configuration (allowed by its hash) and MathJax itself (from its CDN folder) load.

The hostile submission graded end to end (feedback and formgrader in Chromium) is in test_hostile.py.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from course_tools import feedback_page, preprocessors
from test_hostile import HOSTILE_JS, HOSTILE_MD, SENTINEL

PNG = preprocessors.PLACEHOLDER_PNG
ATTACK = "1 onload=alert(document.domain)//"
HOSTILE_META = {"width": ATTACK, "height": ATTACK, "alt": {"x": 1}, "unconfined": "yes onload=x",
                "needs_background": "light onload=x", "isolated": True,
                "filenames": {"image/png": "javascript:alert(1)"}}
MIMES = {"image/png": PNG, "image/jpeg": PNG, "image/svg+xml": "<svg xmlns='http://www.w3.org/2000/svg'/>",
         "text/html": "<b>hi</b>", "text/markdown": "*hi*", "text/latex": "$x$", "text/plain": "hi",
         "application/json": {"a": 1}}
# Where a test needs MathJax itself: a folder holding MathJax 2.7.7 (npm pack mathjax@2.7.7). Without
# it, a stand-in script served at MathJax's URL checks that the page lets MathJax load and configure.
MATHJAX_DIR = os.environ.get("MATHJAX_DIR")


class _Attributes(HTMLParser):
    """Collect every (tag, attribute, value) of a page."""

    def __init__(self) -> None:
        """Start with no attribute."""
        super().__init__()
        self.attrs: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Keep each attribute of the element."""
        self.attrs += [(tag, name, value or "") for name, value in attrs]


def attributes(page: str) -> list[tuple[str, str, str]]:
    """Return every attribute in an HTML page."""
    parser = _Attributes()
    parser.feed(page)
    return parser.attrs


def unsafe_attributes(page: str, template: str | None = None) -> list[tuple[str, str, str]]:
    """Return the event handlers, frames and script-scheme URLs of a page, less those ``template`` itself
    writes on an empty notebook (formgrader's own onclick handlers)."""
    found = [(t, n, v[:40]) for t, n, v in attributes(page)
             if n.startswith("on") or t in ("iframe", "frame", "object", "embed")
             or re.sub(r"\s", "", v).lower().startswith(("javascript:", "data:text/html"))]
    own = set(unsafe_attributes(render(new_notebook(), template))) if template else set()
    return [a for a in found if a not in own]


def output_notebook(meta: dict, top_level: bool) -> nbformat.NotebookNode:
    """Return a notebook with one display of each MIME type, each carrying ``meta`` (per MIME or top level)."""
    cells = []
    for mime, value in MIMES.items():
        md = dict(meta) if top_level else {mime: dict(meta)}
        cells.append(new_code_cell("x", outputs=[new_output("display_data", data={mime: value}, metadata=md)]))
    nb = new_notebook(cells=cells)
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def exporter(template: str):
    """Return an HTMLExporter for one of the templates a submission reaches (as nbgrader configures them)."""
    from nbconvert.exporters import HTMLExporter
    from traitlets.config import Config

    c = Config()
    c.HTMLExporter.template_name = template
    templates = feedback_page.nbgrader_templates()
    if template in ("feedback", "formgrade", feedback_page.TEMPLATE_NAME):
        c.HTMLExporter.extra_template_basedirs = feedback_page.template_basedirs()
        c.HTMLExporter.extra_template_paths = [
            str(templates.parent / "static" / "node_modules" / "bootstrap" / "dist" / "css")]
    return HTMLExporter(config=c)


RESOURCES = {"nbgrader": {"notebook": "one", "score": 1.0, "max_score": 2.0, "late_penalty": 0},
             "assignment_id": "a", "notebook_id": "one", "submission_id": "s", "index": 0, "total": 1,
             "base_url": "", "student": "st", "last_name": "L", "first_name": "F", "notebook_path": "x"}


def render(nb: nbformat.NotebookNode, template: str) -> str:
    """Return ``nb`` rendered with ``template``."""
    body, _ = exporter(template).from_notebook_node(copy.deepcopy(nb), resources=copy.deepcopy(RESOURCES))
    return body


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return a copy of ``nb`` after StripActiveContent (what autograde writes and feedback runs again)."""
    nb = copy.deepcopy(nb)
    preprocessors.StripActiveContent().preprocess(nb, {})
    return nb


TEMPLATES = ("classic", "lab", "feedback", "formgrade", feedback_page.TEMPLATE_NAME)


@pytest.mark.parametrize("top_level", [False, True], ids=["per-mime", "top-level"])
def test_output_metadata_is_validated_for_every_mime(top_level):
    """Hostile width/height/alt/... on every MIME type reach no template as an attribute; plain sizes stay."""
    nb = output_notebook(HOSTILE_META, top_level)
    raw = render(nb, "classic")
    assert ("img", "onload", "alert(document.domain)//") in attributes(raw)  # the attack, unsanitized
    cleaned = clean(nb)
    for template in TEMPLATES:
        page = render(cleaned, template)
        assert unsafe_attributes(page, template) == [], template
        assert "onload" not in page and "alert(" not in page, template
    for cell in cleaned.cells:
        meta = cell.outputs[0].metadata
        assert set(meta) <= set(MIMES) and all(set(v) <= {"alt"} for v in meta.values()), meta
    honest = clean(output_notebook({"width": 320, "height": "200", "unconfined": True, "alt": "a plot"}, False))
    page = render(honest, "classic")
    assert ("img", "width", "320") in attributes(page) and ("img", "height", "200") in attributes(page)
    assert ("img", "alt", "a plot") in attributes(page) and ("img", "class", "unconfined") in attributes(page)


def test_dimension_accepts_only_numbers():
    """Width and height are kept only as plain non-negative numbers."""
    assert [preprocessors._dimension(v) for v in (320, 2.5, "640", " 64 ")] == [320, 2.5, 640, 64]
    for bad in (ATTACK, "100%", "1e3", -1, True, None, [1], {"a": 1}, float("nan"), 10**9, "9" * 9):
        assert preprocessors._dimension(bad) is None, bad


def test_cell_metadata_and_attachments_reach_no_template():
    """Lexer names, hidden sources, odd tags and attachments are cleaned; missing attachments cannot fail a page."""
    md = new_markdown_cell("![a](attachment:x.png) ![b](attachment:gone.svg) ![c](attachment:never.png) $x$")
    md.attachments = {"x.png": {"image/png": 'AAA" onerror="window.pwned=1'},
                      "gone.svg": {"image/svg+xml": "<svg onload='window.pwned=1'/>"}}
    md.metadata.update(tags=["ok", {"x": 1}], alt=["x"], transient={"remove_source": True})
    code = new_code_cell("1 + 1")  # (set after creation: nbformat would refuse it, a submission's JSON need not)
    code.metadata.update(magics_language={"not": "a lexer"}, tags="a b", alt='x" onload="y')
    raw = nbformat.v4.new_raw_cell("<img src=x onerror=window.pwned=1>")
    raw.metadata["raw_mimetype"] = "text/html"
    nb = new_notebook()
    nb.cells = [md, code, raw]
    nb.metadata["language_info"] = {"name": {"x": 1}, "pygments_lexer": ["x"]}
    with pytest.raises(Exception):  # unsanitized, the page cannot even be made
        render(nb, "classic")
    cleaned = clean(nb)
    for template in TEMPLATES:
        page = render(cleaned, template)
        assert unsafe_attributes(page, template) == [], template
        assert page.count(f"data:image/png;base64,{PNG}") == 3, template  # placeholders for x, gone, never
    c0, c1 = cleaned.cells[0], cleaned.cells[1]
    assert set(c0.attachments) == {"x.png", "gone.svg", "never.png"}
    assert c0.metadata == {"tags": ["ok"]} and c1.metadata == {"tags": [], "alt": 'x" onload="y'}
    assert "raw_mimetype" not in cleaned.cells[2].metadata
    assert cleaned.metadata.language_info == {"name": "python"}
    assert clean(cleaned) == cleaned  # feedback cleans the autograded copy again: nothing changes


def csp_of(page: str) -> str:
    """Return the Content-Security-Policy a page declares in a <meta> element."""
    found = [v for t, n, v in attributes(page) if t == "meta" and n == "content"
             and ("meta", "http-equiv", "Content-Security-Policy") in attributes(page)]
    assert len(found) == 1, found
    return found[0]


def test_feedback_page_declares_a_policy_without_inline_script():
    """The course's feedback template declares a CSP; its one inline script is allowed by its exact hash."""
    page = render(clean(output_notebook({}, False)), feedback_page.TEMPLATE_NAME)
    policy = dict((d.strip().split(" ", 1) + [""])[:2] for d in csp_of(page).split(";") if d.strip())
    assert policy["default-src"] == "'none'" and policy["img-src"] == "data:"
    assert "unsafe-inline" not in policy["script-src"] and "unsafe-eval" not in policy["script-src"]
    assert policy["object-src"] == "'none'" and policy["base-uri"] == "'none'"
    inline = re.findall(r"<script>(.*?)</script>", page, re.DOTALL)
    assert len(inline) == 1 and "window.MathJax" in inline[0]
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert f"'sha256-{digest}'" in policy["script-src"].split(), (
        f"course_tools/templates/{feedback_page.TEMPLATE_NAME}/mathjax.html.j2: the CSP must name 'sha256-{digest}'")
    sources = re.findall(r'<script src="([^"]+)"', page)
    assert len(sources) == 1 and sources[0].startswith(policy["script-src"].split()[-1])
    # nbgrader's own template (formgrader keeps it) has no policy: the course's replaces only the macro.
    assert "Content-Security-Policy" not in render(clean(output_notebook({}, False)), "feedback")


def hostile_notebook() -> nbformat.NotebookNode:
    """Return an uncleaned notebook whose markdown, HTML, JavaScript and image metadata each run a script."""
    outputs = [new_output("display_data", data={"image/png": PNG}, metadata={"image/png": {"width": ATTACK}}),
               new_output("display_data", data={"text/html": f"<img src=x onerror=\"{HOSTILE_JS}\">"}),
               new_output("display_data", data={"application/javascript": HOSTILE_JS})]
    nb = new_notebook(cells=[new_markdown_cell("Maths: $x^2 + y^2$"), new_markdown_cell(HOSTILE_MD),
                             new_code_cell("x", outputs=outputs)])
    nb.metadata["language_info"] = {"name": "python"}
    return nb


STUB_MATHJAX = ("window.__mathjax = (window.MathJax && window.MathJax.tex2jax && "
                "window.MathJax.tex2jax.inlineMath[0][0] === '$') ? 'configured' : 'unconfigured';")


def serve_mathjax(route) -> None:
    """Answer a request for MathJax: from MATHJAX_DIR when set, else with the stand-in script."""
    url = route.request.url
    if MATHJAX_DIR:
        rel = url.split("/mathjax/2.7.7/", 1)[-1].split("?", 1)[0]
        path = Path(MATHJAX_DIR) / rel
        if path.is_file():
            kind = "application/javascript" if path.suffix == ".js" else "application/octet-stream"
            route.fulfill(status=200, body=path.read_bytes(), content_type=kind)
        else:
            route.fulfill(status=404, body="")
    else:
        route.fulfill(status=200, body=STUB_MATHJAX, content_type="application/javascript")


def open_page(pw, path: Path) -> tuple[dict, list[str], str]:
    """Open a page in headless Chromium with MathJax's CDN served locally; return (effects, hits, text)."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("no chromium")
    hits: list[str] = []
    browser = pw.chromium.launch(executable_path=chromium, headless=True, args=[
        "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"])
    try:
        context = browser.new_context()
        context.route("https://cdnjs.cloudflare.com/**", serve_mathjax)
        page = context.new_page()
        page.on("request", lambda r: hits.append(r.url) if "sentinel" in r.url else None)
        page.on("dialog", lambda d: (hits.append("dialog:" + d.message), d.dismiss()))
        page.goto(path.as_uri(), wait_until="load", timeout=60_000)
        if MATHJAX_DIR and "Content-Security-Policy" in path.read_text():
            page.wait_for_function("() => document.querySelector('.MathJax_CHTML, .mjx-chtml') !== null",
                                   timeout=30_000)
        page.wait_for_timeout(1500)
        effects = page.evaluate("() => ({title: document.title, pwned: window.pwned === undefined ? null : "
                                "window.pwned, mathjax: window.__mathjax || null, typeset: "
                                "document.querySelectorAll('.MathJax_CHTML, .mjx-chtml').length})")
        return effects, hits, page.inner_text("body")
    finally:
        browser.close()


def test_policy_stops_scripts_the_cleaning_missed(tmp_path, sync_playwright_session):
    """An uncleaned hostile notebook as a course feedback page runs no script; MathJax loads and is configured.
    Control: the same notebook through nbgrader's own feedback template does run the scripts."""
    nb = hostile_notebook()
    control = tmp_path / "control.html"
    control.write_text(render(nb, "feedback"))
    effects, hits, _ = open_page(sync_playwright_session, control)
    assert effects["title"] == "pwned" or effects["pwned"] is not None, effects
    assert any(h.startswith("dialog:") for h in hits) and any(SENTINEL in h for h in hits), hits

    page = tmp_path / "one.html"
    page.write_text(render(nb, feedback_page.TEMPLATE_NAME))
    effects, hits, text = open_page(sync_playwright_session, page)
    assert hits == [] and effects["title"] == "one" and effects["pwned"] is None, (effects, hits)
    assert "Maths" in text
    if MATHJAX_DIR:
        assert effects["typeset"] >= 1  # the real MathJax 2.7.7 rendered $x^2 + y^2$ under the policy
    else:
        assert effects["mathjax"] == "configured"  # MathJax's URL was allowed and saw the configuration
