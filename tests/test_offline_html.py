"""HTML made from notebooks typesets its mathematics offline: opened from disk in a real (headless) Chromium
that may reach nothing but the file itself, the formulae of nbgrader's feedback and of an nbconvert export
become MathJax output, and no request leaves the machine.

Needs Debian's ``chromium`` (CI installs it); the browser tests are skipped with a reason where there is none.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
from pathlib import Path

import nbformat
import pytest
from browser_helpers import CHROMIUM, NO_CHROMIUM, open_offline

from nstlab import course
from nstlab.course import mathjax

from conftest import ROOT, copy_course

ASSIGNMENT = "99-maths"
# A formula of each kind the notebooks use: inline, display, bold symbols (autoloaded TeX extension), AMS.
MATHS = (r"The error $E = \frac{1}{2}\sum_k (y_k - \hat y_k)^2$ falls along $-\nabla_w E$." "\n\n"
         r"$$\boldsymbol\delta^{l} = (\mathbf W^{l+1})^\top \boldsymbol\delta^{l+1} \odot \sigma'(\mathbf z^{l})$$"
         "\n\n" r"\begin{align} G_{ij} &= \sum_k F_{ik} F_{jk} \end{align}"
         "\n\n" r"The loss $\mathcal{L}_{\text{style}}$ of an image $x \in \mathbb{R}^{3 \times H \times W}$.")
FORMULAE = 6
SOURCE = f'''\
# %% [markdown]
# # 99 · Maths in the feedback
#
{"".join(f"# {line}".rstrip() + chr(10) for line in MATHS.splitlines())}
# %%
from nstlab import checks

# %% [solution] id=half
def half(x):
    ### BEGIN SOLUTION
    return x / 2
    ### END SOLUTION

# %% [check] id=check_half points=1
checks.check_true(half(4) == 2, "half(4) should be 2")
'''
# MathJax comes with the dependency jupyter-server-mathjax; without it nothing here can be offline.
needs_mathjax = pytest.mark.skipif(importlib.util.find_spec(mathjax.PACKAGE) is None,
                                   reason=f"needs {mathjax.PACKAGE} (pip install -e . installs it)")

def _assert_typeset_offline(html: Path, seen: dict, formulae: int) -> None:
    assert seen["requests"] == [html.resolve().as_uri()], seen["requests"]  # the page itself, nothing else
    assert seen["errors"] == [], seen["errors"]
    assert seen["typeset"] == formulae, seen
    assert seen["untypeset"] == [], seen["untypeset"]
    # \mathbf and \boldsymbol symbols (four in MATHS) are drawn bold, also where the browser's MathML does
    # not know mathvariant (Chromium)
    assert len(seen["bold"]) == 4 and all(int(w) >= 700 for w in seen["bold"]), seen["bold"]
    for raw in ("$", r"\frac", r"\boldsymbol", r"\begin{align}"):
        assert raw not in seen["text"], f"{raw!r} left untypeset in: {seen['text'][:500]}"


@needs_mathjax
def test_inline_script_holds_no_url_that_a_page_would_load():
    """The inlined MathJax is complete: no CDN address, no script that could end the <script> element early."""
    script = mathjax.inline_script()
    assert "cdnjs" not in script and "cdn.mathjax.org" not in script
    assert "</script" not in script.lower() and "<!--" not in script


@needs_mathjax
def test_inline_script_is_mathjax_with_the_course_settings_first():
    script = mathjax.inline_script()
    assert script.startswith("window.MathJax = {") and mathjax.MATHML_OUTPUT in script


def test_without_mathjax_export_still_works_and_loads_mathjax_from_the_cdn(monkeypatch):
    """Feedback must still be written where the dependency is missing: nbconvert's CDN MathJax, and a warning."""
    monkeypatch.setattr(mathjax, "PACKAGE", "nstlab_no_such_package")
    mathjax.inline_script.cache_clear()
    try:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(MATHS)])
        html, _ = mathjax.OfflineHTMLExporter().from_notebook_node(nb)
    finally:
        mathjax.inline_script.cache_clear()
    assert "cdnjs.cloudflare.com/ajax/libs/mathjax" in html


def test_missing_mathjax_is_one_error_that_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(mathjax, "PACKAGE", "nstlab_no_such_package")
    with pytest.raises(mathjax.MathJaxMissing, match="pip install jupyter-server-mathjax"):
        mathjax.mathjax_folder()


@needs_mathjax
@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
@pytest.mark.parametrize("assignment", ["03-backprop", "06-style-transfer"])
def test_course_notebooks_export_with_every_formula_typeset_offline(assignment: str, tmp_path: Path):
    """The notebooks with the most mathematics: MathJax needs nothing it would have to fetch for them."""
    nb = nbformat.read(ROOT / "notebooks" / assignment / f"{assignment}.ipynb", as_version=4)
    html, _ = mathjax.OfflineHTMLExporter().from_notebook_node(nb)
    page = tmp_path / f"{assignment}.html"
    page.write_text(html, encoding="utf-8")
    seen = open_offline(page)
    assert seen["requests"] == [page.resolve().as_uri()] and seen["errors"] == [], seen
    assert seen["typeset"] > 0
    assert seen["untypeset"] == [], seen["untypeset"]


@needs_mathjax
@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
@pytest.mark.parametrize("template", ["lab", "classic"])
def test_exported_html_typesets_its_formulae_from_disk_with_no_network(template: str, tmp_path: Path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(MATHS)])
    html, _ = mathjax.OfflineHTMLExporter(template_name=template).from_notebook_node(nb)
    page = tmp_path / f"export-{template}.html"
    page.write_text(html, encoding="utf-8")
    _assert_typeset_offline(page, open_offline(page), formulae=FORMULAE)


@pytest.mark.slow
@needs_mathjax
@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_feedback_typesets_its_formulae_from_disk_with_no_network(tmp_path: Path):
    """`nstlab course feedback` on a real autograded submission: the student's HTML file alone, opened from
    disk, shows typeset formulae and asks the network for nothing."""
    from nstlab.course import sandbox

    root = copy_course(tmp_path / "repo")
    (root / "course" / "source" / f"{ASSIGNMENT}.py").write_text(SOURCE, encoding="utf-8")
    course.generate([ASSIGNMENT], root=root, quiet=True)
    submitted = root / "course" / "submitted" / "ada" / ASSIGNMENT
    submitted.mkdir(parents=True)
    release = nbformat.read(root / "notebooks" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    nbformat.write(release, submitted / f"{ASSIGNMENT}.ipynb")
    course.autograde(ASSIGNMENT, root=root, timeout=60, quiet=True, unsafe=sandbox.sandbox_problem() is not None)
    with contextlib.redirect_stdout(io.StringIO()):
        assert course.feedback(ASSIGNMENT, root=root, quiet=True) == []
    feedback = root / "course" / "feedback" / "ada" / ASSIGNMENT / f"{ASSIGNMENT}.html"
    # The file alone, as nbgrader's exchange hands it to the student: copied away from the course.
    alone = tmp_path / "downloads" / feedback.name
    alone.parent.mkdir()
    alone.write_bytes(feedback.read_bytes())
    seen = open_offline(alone)
    _assert_typeset_offline(alone, seen, formulae=FORMULAE)
    assert "NotImplementedError" in seen["text"]  # the blank answer's error, as the feedback shows it
