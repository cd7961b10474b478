r"""HTML made from notebooks, with its mathematics typeset offline: MathJax inlined, never loaded from a CDN.

nbconvert's HTML templates, and nbgrader's feedback template built on them, load MathJax from cdnjs, so a
student who opens feedback without a network (an exam room, a train) sees raw ``$\frac{\partial E}{\partial
w}$``. :class:`OfflineHTMLExporter` writes the same pages with MathJax inside the HTML file itself, so a
single file typesets its formulae wherever it is opened, also from disk (``file://``) and after nbgrader's
exchange has copied the bare ``.html`` file to the student.

Where MathJax comes from: ``jupyter-server-mathjax`` (a dependency of the course), the Jupyter project's
package of MathJax 2.7, the version nbconvert's templates are written for. JupyterLab, Notebook 7 and Voilà
carry MathJax 3 too, but compiled into their own JavaScript bundles, which no page of ours can load alone.

How it fits in one file: MathJax's combined configuration ``TeX-AMS-MML_HTMLorMML-full`` holds the TeX input
and the MathML output in one script; :func:`inline_script` puts it, MathJax itself and the TeX extensions
that TeX loads on demand (``\boldsymbol``, ``\newcommand`` ...) into the page, and asks for MathML output,
which every current browser draws with its own fonts (MathJax's HTML-CSS output would need a megabyte of web
fonts besides). About 0.5 MB per page.

Used by ``course/nbgrader_config.py`` (``GenerateFeedback.exporter_class``) for feedback, and by
``jupyter nbconvert --to nstlab.course.mathjax.OfflineHTMLExporter NOTEBOOK`` for any other export.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import jinja2
from nbconvert.exporters import HTMLExporter
from traitlets import default

# The package that installs MathJax with the course, and how to install it where it is missing.
PACKAGE = "jupyter_server_mathjax"
INSTALL = "pip install jupyter-server-mathjax (a dependency of nstlab: `pip install -e .` installs it)"
# MathJax's own files that go into the page, relative to its folder; the combined configuration already
# holds TeX input, MathML output and the AMS extensions.
CORE = ("MathJax.js", "config/TeX-AMS-MML_HTMLorMML-full.js", "extensions/Safe.js")
# TeX extensions that MathJax 2 loads by itself when a formula uses one of their macros (TeX's autoload
# list); preloaded, since an inlined MathJax has no folder to load them from.
AUTOLOADED = ("HTML", "bbox", "boldsymbol", "mathchoice", "newcommand", "unicode", "verb")
# MathML's operator dictionary (spacing and stretching of each operator), loaded by MathJax block by block of
# Unicode as formulae need them; 80 kB in all.
OPERATOR_TABLES = Path("jax") / "element" / "mml" / "optable"
# The same settings as nbconvert's mathjax.html.j2 (delimiters, AMS equation numbers), plus: MathML output,
# start once the whole page (every inlined script) is there, and no menu, whose code would be fetched.
CONFIG = r"""window.MathJax = {
  extensions: ["tex2jax.js", "Safe.js"],
  config: ["TeX-AMS-MML_HTMLorMML-full.js"],
  delayStartupUntil: "onload",
  tex2jax: {inlineMath: [["$", "$"], ["\\(", "\\)"]], displayMath: [["$$", "$$"], ["\\[", "\\]"]],
            processEscapes: true, processEnvironments: true},
  TeX: {equationNumbers: {autoNumber: "AMS", useLabelIds: true}},
  displayAlign: "center",
  messageStyle: "none",
  showMathMenu: false,
  menuSettings: {renderer: "NativeMML", assistiveMML: false},
  "fast-preview": {disabled: true}
};"""
# The combined configuration picks HTML-CSS output for Chromium (MathJax 2.7 predates its MathML support),
# whose start would fetch font data; register MathML output in its place before any output starts. MathML
# output draws \mathcal, \mathbb and \mathfrak in MathJax's fonts where the computer has them (its web fonts
# are not installed): their @font-face rules name the local fonts instead of files that are not there.
MATHML_OUTPUT = r"""MathJax.Ajax.loadComplete("[MathJax]/jax/output/HTML-CSS/fonts/TeX/fontdata.js");
MathJax.Hub.Register.StartupHook("End Config", function () {
  var outputs = MathJax.Hub.outputJax["jax/mml"] || [];
  for (var i = outputs.length - 1; i >= 0; i--) { if (outputs[i].id !== "NativeMML") outputs.splice(i, 1); }
  if (outputs.length === 0) MathJax.OutputJax.NativeMML.Register("jax/mml");
});
MathJax.Hub.Register.StartupHook("NativeMML Jax Startup", function () {
  var styles = MathJax.OutputJax.NativeMML.config.styles;
  for (var key in styles) {
    if (key.indexOf("@font-face") === 0) styles[key].src = "local('" + styles[key]["font-family"].replace(/-WEB$/, "") + "')";
  }
});"""

# Chromium draws MathML Core, which ignores mathvariant except "normal": without these rules \mathbf{W} and
# \boldsymbol\delta (the course's matrices and error vectors) would look like W and delta.
MATHML_STYLE = ('math [mathvariant="bold"] { font-weight: bold; font-style: normal; text-transform: none; } '
                'math [mathvariant="bold-italic"] { font-weight: bold; font-style: italic; }')


class MathJaxMissing(RuntimeError):
    """MathJax is not installed with the course; the message says how to install it."""


def mathjax_folder() -> Path:
    """The folder of the MathJax installed with the course (``MathJax.js``, ``config/``, ``extensions/``).

    Raises:
        MathJaxMissing: ``jupyter-server-mathjax`` is not installed, with the command that installs it.
    """
    spec = importlib.util.find_spec(PACKAGE)
    folder = Path(spec.origin).parent / "static" if spec and spec.origin else None
    if folder is None or not (folder / CORE[0]).is_file():
        raise MathJaxMissing(f"MathJax for offline HTML is not installed ({PACKAGE} not found); {INSTALL}")
    return folder


def _script_text(path: Path) -> str:
    """A file's JavaScript, safe inside an HTML ``<script>`` element (no ``</script``, no ``<!--``)."""
    # Both occur only inside string and regular-expression literals, where \x3C is the same "<".
    return path.read_text(encoding="utf-8").replace("</script", r"\x3C/script").replace("<!--", r"\x3C!--")


@functools.lru_cache(maxsize=1)
def inline_script() -> str:
    """MathJax with the course's settings, as the text of one ``<script>`` element.

    Raises:
        MathJaxMissing: ``jupyter-server-mathjax`` is not installed.

    Example (needs ``jupyter-server-mathjax``; tests/test_offline_html.py checks it where it is installed):
        >>> script = inline_script()  # doctest: +SKIP
        >>> script.startswith("window.MathJax = {"), "</script" in script  # doctest: +SKIP
        (True, False)
    """
    folder = mathjax_folder()
    parts = [CONFIG, *(_script_text(folder / name) for name in CORE)]
    parts += [_script_text(folder / "extensions" / "TeX" / f"{name}.js") for name in AUTOLOADED]
    parts += [_script_text(path) for path in sorted((folder / OPERATOR_TABLES).glob("*.js"))]
    parts.append(MATHML_OUTPUT)
    return "\n".join(parts)


def _macro_template() -> str:
    """A ``mathjax.html.j2`` whose ``mathjax()`` macro, which nbconvert's and nbgrader's templates call, inlines."""
    script = inline_script()
    if "{% endraw %}" in script:  # cannot happen with MathJax 2.7.9; guards the raw block below
        raise ValueError("MathJax's code contains '{% endraw %}', which the template cannot hold")
    return ("{%- macro mathjax(url=None) -%}\n<!-- MathJax 2.7, inlined: typesets offline -->\n"
            f"<style>{MATHML_STYLE}</style>\n"
            "<script>{% raw %}" + script + "{% endraw %}</script>\n{%- endmacro %}\n")


# Templates replaced by name (they are looked up before nbconvert's own): the MathJax macro, and the
# mermaid.js loader of the lab template, which imports it from cdnjs on every page (no notebook of the
# course draws mermaid diagrams).
NO_MERMAID = "{%- macro mermaid_js(url=None, elk_url=None) -%}{%- endmacro %}\n"


def _templates() -> dict[str, str]:
    return {"mathjax.html.j2": _macro_template(), "mermaidjs.html.j2": NO_MERMAID}


def _loader() -> jinja2.BaseLoader:
    return jinja2.DictLoader(_templates())


def server_files(templates: Path) -> tuple[dict[Path, str], dict]:
    """What makes JupyterLab's own "Save and Export Notebook As → HTML" typeset offline: the pages
    :class:`OfflineHTMLExporter` writes.

    The lab's export builds nbconvert's ``HTMLExporter`` with the server's configuration, so the same
    templates are given to it as files: ``templates/lab`` and ``templates/base`` come first among the template
    folders of every HTML template, ahead of nbconvert's own.

    Args:
        templates: the folder the template files are to be written to.

    Returns:
        The template files (path -> text) for the caller to write, and the ``HTMLExporter`` section of a
        ``jupyter_server_config.json``.

    Raises:
        MathJaxMissing: ``jupyter-server-mathjax`` is not installed.
    """
    # every HTML template extends base; lab defines its own mermaid loader
    files = {templates / template / name: text for template in ("base", "lab") for name, text in _templates().items()}
    # mermaid_js_url cannot be configured; the lab template, the one the menu uses, loads mermaid through the
    # macro replaced above, the classic template from cdnjs (a diagram library: the formulae do not need it).
    return files, {"HTMLExporter": {"extra_template_basedirs": [str(templates)], "require_js_url": EMPTY_SCRIPT,
                                    "jquery_url": EMPTY_SCRIPT}}


# Pages of the course's exports keep their outputs as they are (no widget state is saved), so RequireJS and
# jQuery, which the templates link from cdnjs for widgets, are not needed: an empty script takes their place.
EMPTY_SCRIPT = "data:text/javascript,"
# The classic template imports mermaid.js as a module in its own <script> (not through the macro): a module
# with the one method it calls stands in.
MERMAID_STUB = "data:text/javascript,export%20default%20%7Binitialize()%20%7B%7D%7D%3B"


class OfflineHTMLExporter(HTMLExporter):
    """nbconvert's HTML exporter whose pages need no network: MathJax inlined, no script from a CDN.

    Every setting of :class:`nbconvert.exporters.HTMLExporter` applies (``template_name``, ``embed_images``
    ...); nbgrader's feedback template works through it too.

    Example:
        >>> import nbformat
        >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(r"$E = \frac{1}{2}(y - t)^2$")])
        >>> html, _ = OfflineHTMLExporter().from_notebook_node(nb)
        >>> "cdnjs.cloudflare.com/ajax/libs/require.js" in html  # RequireJS is not loaded from a CDN
        False
    """

    @default("extra_loaders")
    def _extra_loaders_default(self):
        try:
            return [_loader()]
        except MathJaxMissing as err:
            # Feedback must still be written: it then loads MathJax from the CDN, as nbconvert does, and says so.
            self.log.warning("%s; until then, HTML pages load MathJax from a CDN and need a network", err)
            return []

    @default("require_js_url")
    def _require_js_url_default(self):
        return EMPTY_SCRIPT

    @default("jquery_url")
    def _jquery_url_default(self):
        return EMPTY_SCRIPT

    @default("mermaid_js_url")
    def _mermaid_js_url_default(self):
        return MERMAID_STUB
