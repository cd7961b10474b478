"""Serving lectures through Voilà: the command line, the offline template, and the checks before starting.

Voilà (0.5) renders a notebook's outputs and widgets without its code, starts one kernel for each page that
is opened, refuses execute requests from the page, and shuts the kernel down when the page closes (the page
sends a beacon to ``/voila/api/shutdown/<kernel>`` on ``beforeunload``). Kernels whose page vanished without
saying so (a browser that crashed, a laptop put to sleep) are culled after :data:`CULL_IDLE_SECONDS`.

What Voilà would load from the network, and how it is kept local:

* Font Awesome CSS from cdn.jsdelivr.net: version 5 linked by the lab template (a lecture's page) and 4.5 by
  ``page.html`` (the lecture list's frame). The ``nstlab`` template drops both links; Voilà's bundle already
  carries Font Awesome 5 with the v4 names ipywidgets uses.
* mermaid.js from cdnjs (nbconvert's lab template): the ``nstlab`` template drops it.
* MathJax: Voilà 0.5 renders math with the MathJax 3 bundled in its own JavaScript, never the CDN URL in
  its page configuration.
* Widget code: ipywidgets' controls come from the locally installed JupyterLab extension; only a third-party
  widget missing locally would be fetched from a CDN, and the lectures use none.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import socket
import sys
from pathlib import Path

# Voilà's own default port.
DEFAULT_PORT = 8866
# The folder that holds ``voila/templates/nstlab``; Jupyter finds templates through JUPYTER_PATH.
JUPYTER_DATA = Path(__file__).resolve().parent / "jupyter"
TEMPLATE = "nstlab"
# The only JupyterLab extensions a lecture page loads: the widget manager (nbgrader's and Notebook 7's
# extensions fail to load in Voilà and would fill the browser's console with errors).
EXTENSIONS = ("@jupyter-widgets/jupyterlab-manager", "@voila-dashboards/widgets-manager8")
# A kernel whose page went away without the shutdown beacon is culled after this long without activity.
CULL_IDLE_SECONDS = 600


class ServerError(Exception):
    """Lecture mode cannot start; the message says why and how to fix it."""


def check_voila() -> str:
    """Voilà's version, or :class:`ServerError` with the fix when it is not installed here.

    Example:
        >>> check_voila().startswith("0.5")
        True
    """
    try:  # found without importing it (a second or more): the server runs in its own process
        found = importlib.util.find_spec("voila") is not None
    except ValueError:  # listed in sys.modules as missing
        found = False
    if not found:
        raise ServerError(f"Voilà is not installed in this Python ({sys.executable}); install it with "
                          "`pip install 'voila>=0.5.8,<0.6'` (or `make lab`, which installs the course)")
    return importlib.metadata.version("voila")


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``host:port`` now.

    Example:
        >>> with socket.socket() as s:
        ...     s.bind(("127.0.0.1", 0)); s.listen(); taken = s.getsockname()[1]
        ...     port_is_free(taken)
        False
    """
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (the operating system's choice)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def check_port(port: int, host: str = "127.0.0.1") -> None:
    """:class:`ServerError` naming the port and a free one when ``port`` is taken."""
    if not port_is_free(port, host):
        raise ServerError(f"port {port} is already in use (another `nstlab present` or Jupyter server?); stop it, "
                          f"or choose a free port, e.g. `nstlab present --port {free_port(host)}`")


def voila_command(lectures: Path, *, port: int, host: str = "127.0.0.1", extra: list[str] | None = None) -> list[str]:
    """The ``voila`` command line that serves the folder ``lectures`` offline with the projector template.

    Example:
        >>> cmd = voila_command(Path("/course/lectures"), port=8866)
        >>> cmd[1:4], "--template=nstlab" in cmd, "--no-browser" in cmd
        (['-m', 'voila', '/course/lectures'], True, True)
    """
    return [
        sys.executable, "-m", "voila", str(lectures),
        f"--port={port}", f"--Voila.ip={host}", "--no-browser",  # nstlab opens the browser at the lecture itself
        f"--template={TEMPLATE}", "--theme=light", "--strip_sources=True",
        "--VoilaConfiguration.show_tracebacks=False",
        f"--MappingKernelManager.cull_idle_timeout={CULL_IDLE_SECONDS}",
        "--MappingKernelManager.cull_interval=60",
        *(f"--VoilaConfiguration.extension_allowlist={name}" for name in EXTENSIONS),
        *(extra or []),
    ]


def voila_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for the Voilà process: the ``nstlab`` template on ``JUPYTER_PATH``, and kernels that
    run with one torch thread (a lecture's kernel answers small requests; two threads on a busy laptop wait
    for each other).

    Example:
        >>> env = voila_environment({"JUPYTER_PATH": "/x"})
        >>> env["JUPYTER_PATH"].split(os.pathsep)[1], env["OMP_NUM_THREADS"]
        ('/x', '1')
    """
    env = dict(os.environ if base is None else base)
    env["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(JUPYTER_DATA), env.get("JUPYTER_PATH", "")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def lecture_url(port: int, lecture: str | None, host: str = "127.0.0.1") -> str:
    """The page of ``lecture`` (or of the lecture list when ``None``) on a server at ``host:port``.

    Example:
        >>> lecture_url(8866, "part1-perceptron-to-backprop")
        'http://127.0.0.1:8866/voila/render/part1-perceptron-to-backprop.ipynb'
    """
    base = f"http://{host}:{port}"
    return f"{base}/voila/render/{lecture}.ipynb" if lecture else f"{base}/"


__all__ = ["CULL_IDLE_SECONDS", "DEFAULT_PORT", "ServerError", "check_port", "check_voila", "free_port",
           "lecture_url", "port_is_free", "voila_command", "voila_environment"]
