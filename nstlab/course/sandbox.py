"""A sandbox per graded notebook: the kernel sees its own files, a read-only system, and nothing else.

While nbgrader grades a submission, the student's code runs with whatever rights its kernel has. Here the
kernel is started inside `bubblewrap <https://github.com/containers/bubblewrap>`_ (Debian's ``bubblewrap``
package), which builds it a world of its own from Linux namespaces:

================  ===========================================================================================
files             a private copy of the submission's folder (notebooks left out: they hold the hidden tests)
                  at ``/home/student/work``, writable; the system (``/usr``, ``/etc`` ...), Python and the
                  ``nstlab`` library read-only; a small ``/tmp``. The course root, the gradebook,
                  ``solutions/``, ``course/source/`` and other students' folders do not exist in there.
network           none (a network namespace of its own); the kernel talks to the grader over Unix sockets
                  in a folder shared with it, not over TCP
processes         a PID namespace: when the kernel ends or is killed, every process it started dies with it,
                  detached (``setsid``) ones included
limits            memory (``RLIMIT_DATA``), processes (``RLIMIT_NPROC`` for a user id of its own), file size
                  (``RLIMIT_FSIZE``) and CPU time (``RLIMIT_CPU``), set by :class:`Limits`
environment       cleared; only what the kernel needs (``PATH``, ``HOME``, the course's ``NSTLAB_*`` settings,
                  ``NBGRADER_EXECUTION``) and ``NSTLAB_DEVICE=cpu``, so grades do not depend on a GPU
================  ===========================================================================================

When the grader runs as root, the kernel runs as an unprivileged user id of its own (``61000 + slot``, one
per parallel grading job) so that the process limit counts only its own processes; otherwise bubblewrap
makes an unprivileged user namespace.

:class:`SandboxKernelManager` is a ``jupyter_client`` kernel manager that starts every kernel this way; the
course configuration hands it to nbgrader (see :mod:`nstlab.course.grading`). :func:`sandbox_problem` says
why no sandbox can be made on this machine, so that ``nstlab course autograde`` can refuse to grade without
one unless the instructor passes ``--unsafe``.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from traitlets import Integer, Unicode

# Where the submission's private copy appears inside the sandbox; a neutral path, so that nothing the
# kernel prints names a folder of the grading machine.
SANDBOX_HOME = "/home/student"
SANDBOX_WORK = f"{SANDBOX_HOME}/work"
# First user id of the sandboxed kernels when the grader is root; parallel job k uses FIRST_UID + k.
FIRST_UID = 61000
# System folders the kernel may read (those that exist are bound read-only at the same place).
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/sys")
# Environment variables passed from the grader to the kernel; everything else is dropped.
# The course's own NSTLAB_* settings pass too, but for the two that name folders of the grading machine.
PASSED_ENV = ("NBGRADER_EXECUTION", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "LANG", "LC_ALL", "TZ")


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed kernel (each process in it, for memory, file size and CPU time).

    The defaults leave room for the largest graded notebook in the ``grade`` profile (VGG19 with random
    weights, about 1 GiB at its peak) and stop a runaway submission long before it troubles the machine.
    """

    memory_mib: int = 4096
    processes: int = 64
    file_mib: int = 64
    cpu_seconds: int = 1800
    tmp_mib: int = 256


def find_bwrap() -> str | None:
    """The path of the ``bwrap`` program, or None."""
    return shutil.which("bwrap")


@functools.cache
def sandbox_problem() -> str | None:
    """Why no sandbox can be made on this machine, or None when one can.

    Tries the real thing: a throw-away ``bwrap`` with the same namespaces a grading kernel gets.
    """
    if not sys.platform.startswith("linux"):
        return f"the grading sandbox needs Linux namespaces; this is {sys.platform}"
    bwrap = find_bwrap()
    if bwrap is None:
        return "bubblewrap is not installed (Debian/Ubuntu: `apt-get install bubblewrap`)"
    command = [bwrap, *_namespaces(), "--die-with-parent", *_system_binds(), "--proc", "/proc", "--dev", "/dev",
               "--", *_drop_privileges(FIRST_UID), "/bin/true"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"bubblewrap could not be started: {err}"
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no message"])[-1]
        return (f"bubblewrap cannot create namespaces here ({detail}); unprivileged user namespaces may be "
                "disabled (sysctl kernel.unprivileged_userns_clone=1) or a container forbids them")
    return None


def _namespaces() -> list[str]:
    """bubblewrap's namespace options: all of them, but no user namespace when root (see _drop_privileges)."""
    if os.geteuid() != 0:
        return ["--unshare-all"]
    return ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
            "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]


def _drop_privileges(uid: int) -> list[str]:
    """Inside the sandbox, the prefix that runs the kernel as ``uid`` with no capabilities, when we are root.

    Done inside, after bubblewrap has bound the folders as root: the unprivileged user could not reach
    them on the way there (``/root`` is private). Nothing when we are not root: bubblewrap's user namespace
    already runs the kernel without privileges.
    """
    if os.geteuid() != 0:
        return []
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", "--"]


def _system_binds() -> list[str]:
    binds = []
    for path in SYSTEM_PATHS:
        if os.path.exists(path):
            binds += ["--ro-bind", path, path]
    return binds


def _python_binds() -> list[str]:
    """Read-only binds of this Python, its environment and the nstlab library, at their own paths.

    Only these folders, never the folder that holds them: with an editable install from a clone of the
    course, the clone's ``nstlab/`` is visible and its ``solutions/`` is not.
    """
    import nstlab

    roots = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parents[1],
             Path(nstlab.__file__).resolve().parent}
    for entry in sys.path:  # site-packages and friends, outside the prefixes on some installs
        path = Path(entry or ".").resolve()
        if path.is_dir() and "site-packages" in path.parts:
            roots.add(path)
    kept = sorted(r for r in roots if r.exists() and str(r) not in ("/", "/usr") and not any(
        r != other and other in r.parents for other in roots))
    binds = []
    for root in kept:
        binds += _open_parents(root) + ["--ro-bind", str(root), str(root)]
    return binds


def _open_parents(path: Path) -> list[str]:
    """Make the folders above a bound path traversable for the kernel's user (``/root`` is private)."""
    args = []
    for parent in reversed(path.parents[:-1]):  # from the top, "/" excluded
        args += ["--perms", "0755", "--dir", str(parent)]
    return args


def _process_count(uid: int) -> int:
    """How many processes ``uid`` runs now (the process limit counts them too)."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == uid
            except OSError:
                pass
    return count


def wrap_command(argv: list[str], *, work: Path, runtime: Path, limits: Limits, uid: int | None,
                 env: dict[str, str] | None = None) -> list[str]:
    """The command that runs ``argv`` (a kernel) in the sandbox.

    Args:
        argv: the kernel's own command line.
        work: the private copy of the submission's folder, seen as ``/home/student/work`` inside.
        runtime: the folder with the connection file and the kernel's Unix sockets, seen at the same path.
        limits: resource limits.
        uid: the user id to run as when the grader is root; ignored otherwise.
        env: extra environment variables for the kernel.
    """
    environment = {key: os.environ[key] for key in PASSED_ENV if key in os.environ}
    environment.update({key: value for key, value in os.environ.items() if key.startswith("NSTLAB_")})
    environment.update({
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": SANDBOX_HOME, "TMPDIR": "/tmp", "MPLCONFIGDIR": "/tmp/matplotlib",
        "PYTHONDONTWRITEBYTECODE": "1", "NSTLAB_DEVICE": "cpu",
        **(env or {}),
    })
    environment.pop("NSTLAB_COURSE_ROOT", None)  # the course root does not exist in there
    environment.pop("NSTLAB_WEIGHTS_DIR", None)  # set below, when the weights folder is bound
    root = os.geteuid() == 0
    nproc = limits.processes + (0 if root else _process_count(os.geteuid()))
    mib = 1024 * 1024
    command = ["prlimit", f"--data={limits.memory_mib * mib}", f"--nproc={nproc}",
               f"--fsize={limits.file_mib * mib}", f"--cpu={limits.cpu_seconds}", "--"]
    command += [find_bwrap() or "bwrap", *_namespaces(), "--die-with-parent", "--new-session", "--clearenv",
                # The fresh /tmp first: Python, the course or the runtime folder may live below /tmp, and a
                # tmpfs mounted after their binds would hide them.
                "--perms", "1777", "--size", str(limits.tmp_mib * mib), "--tmpfs", "/tmp",
                "--perms", "1777", "--size", str(limits.tmp_mib * mib), "--tmpfs", SANDBOX_HOME,
                "--proc", "/proc", "--dev", "/dev",
                *_system_binds(), *_python_binds(),
                "--bind", str(work), SANDBOX_WORK,
                *_open_parents(runtime), "--bind", str(runtime), str(runtime),
                "--chdir", SANDBOX_WORK]
    for key, value in sorted(environment.items()):
        command += ["--setenv", key, value]
    weights = _weights_folder()
    if weights is not None:  # pretrained weights, read-only, so that grading sees what students saw
        command += [*_open_parents(weights), "--ro-bind", str(weights), str(weights),
                    "--setenv", "NSTLAB_WEIGHTS_DIR", str(weights)]
    return [*command, "--", *_drop_privileges(uid if uid is not None else FIRST_UID), *argv]


def _weights_folder() -> Path | None:
    """The grader's cache of pretrained weights (as :func:`nstlab.weights.cache_dir` finds it), if it exists.

    Worked out as torch.hub does, without importing torch into the grading process.
    """
    if os.environ.get("NSTLAB_WEIGHTS_DIR"):
        folder = Path(os.environ["NSTLAB_WEIGHTS_DIR"]).expanduser()
    elif os.environ.get("TORCH_HOME"):
        folder = Path(os.environ["TORCH_HOME"]).expanduser() / "hub" / "checkpoints"
    else:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        folder = cache / "torch" / "hub" / "checkpoints"
    return folder.resolve() if folder.is_dir() else None


def private_copy(folder: Path, target: Path) -> Path:
    """Copy a submission's folder for its kernel, leaving out notebooks (the graded one holds the hidden tests)."""
    shutil.copytree(folder, target, ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"),
                    symlinks=True, dirs_exist_ok=True)
    return target


def _chown_tree(path: Path, uid: int) -> None:
    for folder, dirs, files in os.walk(path):
        for name in [folder, *(os.path.join(folder, d) for d in dirs), *(os.path.join(folder, f) for f in files)]:
            os.lchown(name, uid, uid)


class SandboxKernelManager(AsyncKernelManager):
    """A kernel manager whose kernels run in the grading sandbox (see the module docstring).

    Options (traitlets, settable in ``nbgrader_config.py`` or on nbgrader's command line):
    ``memory_mib``, ``processes``, ``file_mib``, ``cpu_seconds`` and ``slot`` (the parallel job number,
    which picks the kernel's user id).
    """

    memory_mib = Integer(Limits.memory_mib, help="memory per process, MiB").tag(config=True)
    processes = Integer(Limits.processes, help="processes the kernel may run at once").tag(config=True)
    file_mib = Integer(Limits.file_mib, help="largest file the kernel may write, MiB").tag(config=True)
    cpu_seconds = Integer(Limits.cpu_seconds, help="CPU seconds per process").tag(config=True)
    slot = Integer(0, help="parallel grading job number (picks the kernel's user id when root)").tag(config=True)
    sandbox_runtime = Unicode("", help="folder of the current kernel's sockets and private copy (set at start)")

    @property
    def limits(self) -> Limits:
        return Limits(memory_mib=self.memory_mib, processes=self.processes, file_mib=self.file_mib,
                      cpu_seconds=self.cpu_seconds)

    @property
    def uid(self) -> int:
        return FIRST_UID + self.slot

    async def _async_pre_start_kernel(self, **kw):
        problem = sandbox_problem()
        if problem:
            raise RuntimeError(f"cannot start a sandboxed kernel: {problem}")
        if not self.sandbox_runtime:  # first start; a restart keeps the private copy and its files
            runtime = Path(tempfile.mkdtemp(prefix="nstlab-kernel-"))
            os.chmod(runtime, 0o755)
            private_copy(Path(kw.get("cwd") or os.getcwd()), runtime / "work")
            if os.geteuid() == 0:
                _chown_tree(runtime, self.uid)
            self.sandbox_runtime = str(runtime)
        runtime = Path(self.sandbox_runtime)
        # Unix sockets instead of TCP: the kernel has no network, not even the grader's loopback.
        self.transport = "ipc"
        self.ip = str(runtime / "kernel")
        self.connection_file = str(runtime / "connection.json")
        kw["cwd"] = str(runtime)
        # An interrupt as a message: a SIGINT to the process group would reach bubblewrap itself.
        self.kernel_spec.interrupt_mode = "message"
        # The kernel's own console output (banners, a crash's last words) goes to a log beside its sockets.
        self._close_log()
        self._log = open(runtime / "kernel.log", "ab")  # noqa: SIM115 -- closed at cleanup
        kw["stdout"] = kw["stderr"] = self._log
        cmd, kw = await super()._async_pre_start_kernel(**kw)
        if os.geteuid() == 0:
            os.chown(self.connection_file, self.uid, self.uid)
        return cmd, kw

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        argv = super().format_kernel_cmd(extra_arguments)
        runtime = Path(self.sandbox_runtime)
        return wrap_command(argv, work=runtime / "work", runtime=runtime, limits=self.limits, uid=self.uid)

    def _close_log(self) -> None:
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        self._close_log()
        if not restart and self.sandbox_runtime:
            shutil.rmtree(self.sandbox_runtime, ignore_errors=True)
            self.sandbox_runtime = ""
