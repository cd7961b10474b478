"""``nstlab lab``: open JupyterLab on the course, with the student's own copies in ``work/``.

Before starting, every released notebook that is not yet in ``work/`` is copied there (see
:func:`nstlab.course.start`); notebooks already in ``work/`` are the student's and are never touched, so
pulling a course update and running ``make lab`` again is always safe.

This is the students' lab: nbgrader's instructor panels (Formgrader, Create Assignment, and the Assignment
and Course lists of a JupyterHub exchange, which this course does not use) are switched off for this launch
only, and "Validate" stays on every notebook's toolbar. Nothing is changed in the environment, so the
instructor's ``jupyter lab`` and ``nstlab course`` commands keep all of nbgrader; ``nstlab lab --instructor``
starts the lab with it too. How: a configuration folder put first on ``JUPYTER_CONFIG_PATH`` for this launch
(see :func:`student_config`), where JupyterLab reads which plugins are disabled (``labconfig/page_config.json``)
and Jupyter Server which server extensions to load.

Both labs, the student's and the instructor's, export HTML that typesets its formulae offline: "File → Save
and Export Notebook As → HTML" writes the pages of :class:`nstlab.course.mathjax.OfflineHTMLExporter`, MathJax
inside the file, through the same configuration folder (:func:`lab_config`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from nstlab import course
from nstlab.cli import UserError

# nbgrader's JupyterLab plugins that are for instructors (or for a JupyterHub exchange); students keep
# "@jupyter/nbgrader:validate-assignment", the Validate button.
INSTRUCTOR_PLUGINS = (
    "@jupyter/nbgrader:formgrader",
    "@jupyter/nbgrader:create-assignment",
    "@jupyter/nbgrader:assignment-list",
    "@jupyter/nbgrader:course-list",
    "@jupyter/nbgrader:menu",  # the "Nbgrader" menu, which holds only the panels above
)
# The server side of the same panels: without them their URLs (/formgrader ...) answer 404 in the student lab.
INSTRUCTOR_SERVER_EXTENSIONS = (
    "nbgrader.server_extensions.formgrader",
    "nbgrader.server_extensions.assignment_list",
    "nbgrader.server_extensions.course_list",
)
CONFIG_PATH_VAR = "JUPYTER_CONFIG_PATH"


def lab_config(folder: Path, *, student: bool = True) -> Path:
    """Write the lab's Jupyter configuration into ``folder`` (made if needed) and return it.

    For students, ``labconfig/page_config.json`` disables :data:`INSTRUCTOR_PLUGINS` and
    ``jupyter_server_config.d/nstlab-student-lab.json`` turns off :data:`INSTRUCTOR_SERVER_EXTENSIONS`. For
    both, ``jupyter_server_config.json`` makes the lab's HTML export typeset offline
    (templates in ``folder/nbconvert-templates``). A folder first on ``JUPYTER_CONFIG_PATH`` takes precedence
    over the environment's own settings, key by key, so every other extension stays as installed.
    """
    from nstlab.course import mathjax

    settings: dict[Path, dict] = {}
    files: dict[Path, str] = {}
    if student:
        settings[Path("labconfig") / "page_config.json"] = {
            "disabledExtensions": {name: True for name in INSTRUCTOR_PLUGINS}}
        settings[Path("jupyter_server_config.d") / "nstlab-student-lab.json"] = {
            "ServerApp": {"jpserver_extensions": {name: False for name in INSTRUCTOR_SERVER_EXTENSIONS}}}
    try:
        templates, exporter = mathjax.server_files(folder / "nbconvert-templates")
        files.update({path.relative_to(folder): text for path, text in templates.items()})
        # In the main file: Jupyter Server reads extension switches from jupyter_server_config.d/, other
        # settings from jupyter_server_config.json of each folder on the path.
        settings[Path("jupyter_server_config.json")] = exporter
    except mathjax.MathJaxMissing as err:
        print(f"warning: {err}; until then the lab's HTML export loads MathJax from a CDN", file=sys.stderr)
    files.update({path: json.dumps(content, indent=2) + "\n" for path, content in settings.items()})
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.writing")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)  # a lab starting at the same moment reads the old file or the new one, never half
    return folder


def student_config(folder: Path) -> Path:
    """The student lab's configuration (see :func:`lab_config`), written into ``folder``."""
    return lab_config(folder, student=True)


def lab_config_folder(instructor: bool = False) -> Path:
    """Where the lab's configuration is written: the user's cache (``$XDG_CACHE_HOME``, ``~/.cache``)."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "nstlab" / ("instructor-lab" if instructor else "student-lab")


def lab_environment(config: Path | None, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment JupyterLab starts with: ``config`` first on ``JUPYTER_CONFIG_PATH`` (None: unchanged)."""
    env = dict(os.environ if environ is None else environ)
    if config is not None:
        env[CONFIG_PATH_VAR] = os.pathsep.join(p for p in (str(config), env.get(CONFIG_PATH_VAR, "")) if p)
    return env


def lab_command(root: Path, extra: list[str]) -> list[str]:
    """The ``jupyter lab`` command line that serves ``root`` and opens ``work/``."""
    command = [
        sys.executable, "-m", "jupyterlab",
        f"--ServerApp.root_dir={root}",
        "--LabApp.default_url=/lab/tree/work",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # Jupyter refuses to run as root without it (containers, lab machines)
    return command + extra


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "lab",
        help="copy new notebooks into work/ and start JupyterLab on the course",
        description="Copy released notebooks that are missing from work/ (never overwriting), then start "
        "JupyterLab with the course beside them. Extra options go to jupyter lab (e.g. --no-browser --port 8889).",
    )
    parser.add_argument("--instructor", action="store_true",
                        help="keep nbgrader's instructor panels (Formgrader, Create Assignment); students do not "
                        "need them")
    parser.set_defaults(_passes_unknown_options=True)  # everything unknown goes to jupyter lab
    return parser


def run(args: argparse.Namespace) -> int:
    try:
        root = course.course_root()
        for name in course.assignments(root):
            if (root / "notebooks" / name).is_dir():
                started = course.start(name, root=root)
                for path in started.copied:
                    print(f"copied {path.relative_to(root)}")
    except course.CourseError as err:
        raise UserError(str(err)) from err
    command = lab_command(root, args.extra)
    config = lab_config(lab_config_folder(args.instructor), student=not args.instructor)
    print("starting JupyterLab: your notebooks are in work/, the course material beside them", flush=True)
    os.execve(command[0], command, lab_environment(config))
    return 0  # not reached: execv replaces this process
