"""nbgrader preprocessors that make autograding trustworthy: sandboxed, guarded, nothing lost, all reported.

``course/nbgrader_config.py`` puts these in nbgrader's own pipeline, so ``nbgrader autograde`` and
``nstlab course autograde`` grade the same way:

=========================  ===================================================================================
sanitize (before running)
:class:`RepairMetadata`    a cell whose nbgrader metadata was damaged gets it back from the release, matched by
                           its position among the graded cells (or by its source); one that cannot be matched
                           becomes an ordinary cell and the student is flagged, instead of the whole notebook
                           failing to validate
:class:`RestoreCells`      nbgrader's restoring of locked cells from the gradebook, which reports a change only
                           for cells whose source differs from what the student was given; a graded cell's
                           grade, solution and points (a written answer's too) come back from the gradebook,
                           reported as tampering when changed
run
:class:`SandboxedExecute`  each kernel in the sandbox of :mod:`nstlab.course.sandbox`; the library's functions
                           restored before every graded cell (:mod:`nstlab.course.guard`); a kernel that dies
                           or ignores the interrupt is restarted, the cells before replayed, and grading goes on
                           with the next cell, so it costs only the cells it could not run; outputs capped
:class:`LibraryPolicy`     (in :mod:`nstlab.course.policy`) an exercise answered by calling the library's own
                           function of the same name scores 0 for its checks, with a message saying why; code
                           that reaches into the grader's or the interpreter's machinery is flagged
:class:`WriteReport`       what happened to the submission, in ``course/reports/<assignment>/<student>.json``
feedback
:class:`SanitizeFeedback`  (in :mod:`nstlab.course.feedback_filter`) errors shown as their message only
                           (no hidden-test lines, library source or absolute paths), outputs capped
=========================  ===================================================================================
"""

from __future__ import annotations

import ast
import copy
import json
import re
from pathlib import Path

import nbformat
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbgrader.preprocessors import NbGraderPreprocessor, OverwriteCells
from nbgrader.preprocessors.execute import Execute
from traitlets import Bool, Integer, Unicode

from nstlab.course.sandbox import SandboxKernelManager

# Bytes of output a cell keeps in a graded notebook (and in feedback); a runaway print costs nothing more.
MAX_OUTPUT_BYTES = 100_000
EVENTS = "nstlab_events"  # key of the events list in nbconvert's resources and in the notebook's metadata


def add_event(resources: dict, kind: str, message: str, **extra) -> None:
    resources.setdefault(EVENTS, []).append({"kind": kind, "message": message, **extra})


def course_folder(db_url: str) -> Path:
    """The ``course/`` folder of a gradebook URL (``sqlite:////.../course/gradebook.db``)."""
    return Path(db_url.removeprefix("sqlite:///")).parent


def release_notebook(release_directory: str, resources: dict) -> nbformat.NotebookNode | None:
    info = resources.get("nbgrader", {})
    path = Path(release_directory) / info.get("assignment", "") / f"{info.get('notebook', '')}.ipynb"
    return nbformat.read(path, as_version=4) if release_directory and path.is_file() else None


def parse_cell(source: str) -> ast.Module | None:
    """A code cell's syntax tree (IPython's ``%magic`` and ``!shell`` lines left out), or None if it has none."""
    try:
        return ast.parse(re.sub(r"^\s*[%!].*$", "", source, flags=re.M))
    except SyntaxError:
        return None


def _grader_cells(nb) -> list:
    return [cell for cell in nb.cells if "nbgrader" in cell.metadata]


# --------------------------------------------------------------------------------------------- sanitize


class RepairMetadata(NbGraderPreprocessor):
    """Give cells with damaged nbgrader metadata their release metadata back, or make them ordinary cells."""

    release_directory = Unicode("", help="folder of the student release (notebooks/)").tag(config=True)

    def preprocess(self, nb, resources):
        from nbgrader.nbgraderformat import MetadataValidator

        release = release_notebook(self.release_directory, resources)
        validator = MetadataValidator()
        templates = _grader_cells(release) if release is not None else []
        by_id = {c.metadata.nbgrader.get("grade_id"): c for c in templates}
        by_source = {c.source: c for c in templates}
        position = 0  # index among the submission's nbgrader cells, matched to the release's
        for index, cell in enumerate(nb.cells):
            if "nbgrader" not in cell.metadata:
                continue
            try:
                validator.validate_cell(copy.deepcopy(cell))
                grade_id = cell.metadata.nbgrader.get("grade_id")
                ok = isinstance(grade_id, str) and (not by_id or grade_id in by_id)
            except Exception:  # noqa: BLE001 -- any damage (schema too old or new, wrong types) is repaired
                ok = False
            if ok:
                position += 1
                continue
            meta = cell.metadata.get("nbgrader")
            grade_id = meta.get("grade_id") if isinstance(meta, dict) else None
            template = by_id.get(grade_id) or by_source.get(cell.source)
            if template is None and position < len(templates) and templates[position].cell_type == cell.cell_type:
                template = templates[position]
            position += 1
            if template is not None:
                cell.metadata["nbgrader"] = copy.deepcopy(template.metadata.nbgrader)
                add_event(resources, "repaired", f"cell {index}: damaged nbgrader metadata restored from the release "
                          f"({template.metadata.nbgrader.get('grade_id')})", cell=index)
            else:
                del cell.metadata["nbgrader"]
                add_event(resources, "flagged", f"cell {index}: damaged nbgrader metadata that matches no cell of "
                          "the release; graded as an ordinary cell", cell=index)
        nb.metadata[EVENTS] = resources.get(EVENTS, [])
        return nb, resources


class RestoreCells(OverwriteCells):
    """nbgrader's restoring of locked and graded cells, reporting only cells the student really changed.

    nbgrader compares a submitted check cell with the gradebook's copy, which still holds the hidden tests, so
    every untouched cell looked changed. Here a cell counts as changed when its source differs from the
    released one (or, with no release at hand, from the gradebook's without its hidden tests).
    """

    release_directory = Unicode("", help="folder of the student release (notebooks/)").tag(config=True)

    def preprocess(self, nb, resources):
        release = release_notebook(self.release_directory, resources)
        self._released = {c.metadata.nbgrader.get("grade_id"): c.source
                          for c in (_grader_cells(release) if release is not None else [])}
        self._resources = resources
        nb, resources = super().preprocess(nb, resources)
        nb.metadata[EVENTS] = resources.get(EVENTS, [])
        return nb, resources

    def preprocess_cell(self, cell, resources, cell_index):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id is not None:
            self._restore_roles(cell, grade_id)
        submitted = cell.source
        cell, resources = super().preprocess_cell(cell, resources, cell_index)
        if grade_id is not None and cell.metadata.get("nbgrader", {}).get("locked") and submitted != cell.source:
            released = self._released.get(grade_id)
            if released is None:
                released = re.sub(r"\n?### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS\n?", "", cell.source, flags=re.S)
            if submitted.strip() != released.strip():
                self.log.warning("Locked cell %s was edited by the student; restored from the gradebook", grade_id)
                add_event(self._resources, "tampered", f"locked cell {grade_id} was edited; restored before grading",
                          cell=cell_index, grade_id=grade_id)
        return cell, resources

    def _restore_roles(self, cell, grade_id: str) -> None:
        """Give back the grade and solution flags the gradebook recorded for this cell.

        nbgrader restores a cell's type, locked flag and points, not these two: a written answer whose
        ``grade`` flag the student removed would no longer be graded, and one turned into a non-solution cell
        would lose its "No response" comment. Both count as tampering, like an edited check cell.
        """
        from nbgrader.api import MissingEntry

        try:
            self.gradebook.find_source_cell(grade_id, self.notebook_id, self.assignment_id)
        except MissingEntry:
            return  # a cell the gradebook does not know: nbgrader drops its id next
        meta = cell.metadata.nbgrader
        for role, find in (("grade", self.gradebook.find_grade_cell), ("solution", self.gradebook.find_solution_cell)):
            try:
                recorded = find(grade_id, self.notebook_id, self.assignment_id)
            except MissingEntry:
                recorded = None
            if bool(meta.get(role)) != (recorded is not None):
                self.report_change(grade_id, role, recorded is not None, meta.get(role))
                meta[role] = recorded is not None
            if role == "grade" and recorded is not None and "points" not in meta:
                meta["points"] = recorded.max_score  # nbgrader compares them next, and restores a changed value

    def report_change(self, name, attr, old, new):
        if attr != "checksum":  # checksum changes are judged in preprocess_cell, against the release
            super().report_change(name, attr, old, new)
            add_event(self._resources, "tampered", f"cell {name}: its {attr} was changed from {old} to {new}; restored",
                      grade_id=name)


# -------------------------------------------------------------------------------------------------- run


def _imports_of(nb) -> str:
    """The import statements of the notebook's instructor cells, as source (for the guard)."""
    lines = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        tree = parse_cell(cell.source) if cell.cell_type == "code" and not meta.get("solution") else None
        if tree is None:
            continue
        lines += [ast.unparse(node) for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    return "\n".join(dict.fromkeys(lines))


class SandboxedExecute(Execute):
    """nbgrader's Execute, with kernels in the sandbox, guarded checks, recovery from dead kernels, output caps."""

    unsafe = Bool(False, help="run kernels without the sandbox (only with `--unsafe`)").tag(config=True)
    max_restarts = Integer(3, help="kernel restarts per notebook before the remaining cells are given up").tag(
        config=True)
    max_output_bytes = Integer(MAX_OUTPUT_BYTES, help="bytes of output kept per cell").tag(config=True)
    reuse_directory = Unicode("", help="course folder of a parallel run whose executed notebooks to reuse").tag(
        config=True)
    release_directory = Unicode("", help="folder of the student release (notebooks/)").tag(config=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.kernel_manager_class = AsyncKernelManager if self.unsafe else SandboxKernelManager

    # ---- the whole notebook
    def preprocess(self, nb, resources=None, km=None):
        events = resources.setdefault(EVENTS, list(nb.metadata.get(EVENTS, [])))
        if self.unsafe:
            add_event(resources, "unsafe", "graded without the sandbox (--unsafe)")
        if self._reuse(nb, resources):
            return nb, resources
        # The instructor's imports, from the release: a submission's own cells must not choose what the guard
        # re-imports before each check.
        release = release_notebook(self.release_directory, resources)
        self._imports = _imports_of(release if release is not None else nb)
        self._failed: set[int] = set()
        self._restarts = 0
        self._given_up = False
        self._bytes: dict[int, int] = {}
        self._guarded = False
        nb, resources = super().preprocess(nb, resources, km)
        resources[EVENTS] = events
        resources["nstlab_executed"] = "this process"
        return nb, resources

    def _reuse(self, nb, resources) -> bool:
        """Take the outputs of a parallel run of the same sanitized notebook, when there is one."""
        if not self.reuse_directory:
            return False
        info = resources["nbgrader"]
        done = Path(self.reuse_directory) / "autograded" / info["student"] / info["assignment"] / \
            f"{info['notebook']}.ipynb"
        report = Path(self.reuse_directory) / "reports" / info["assignment"] / f"{info['student']}.json"
        if not (done.is_file() and report.is_file()):
            return False
        executed = nbformat.read(done, as_version=4)
        if [c.source for c in executed.cells] != [c.source for c in nb.cells]:
            return False
        for cell, ran in zip(nb.cells, executed.cells, strict=True):
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = ran.outputs, ran.execution_count
        resources[EVENTS] += json.loads(report.read_text()).get("events", [])  # WriteReport drops repeats
        nb.metadata["language_info"] = executed.metadata.get("language_info", {"name": "python"})
        self.log.info("Outputs of %s taken from its parallel run", info["student"])
        resources["nstlab_executed"] = "parallel job"
        return True

    # ---- one cell
    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or not cell.source.strip():
            return cell, resources
        if self._given_up:
            self._fail(cell, "NotRun", "not run: the kernel died too often earlier in this notebook")
            return cell, resources
        self._guard()
        if cell.metadata.get("nbgrader", {}).get("grade"):
            self._silent(f"import nstlab.course.guard as __g\n__g.restore(globals(), {self._imports!r})\ndel __g")
        try:
            cell = self.execute_cell(cell, index, store_history=True)
        except (DeadKernelError, CellTimeoutError, RuntimeError) as err:
            died = isinstance(err, DeadKernelError) or "died" in str(err).lower()
            reason = ("the kernel died while running this cell (os._exit, a crash, or a resource limit)" if died
                      else "the cell did not stop when interrupted after the time limit")
            self.log.warning("Cell %d of %s: %s; restarting the kernel", index,
                             resources["nbgrader"].get("student"), reason)
            self._fail(cell, "KernelDied" if died else "CellTimeoutError", reason)
            add_event(resources, "kernel", f"cell {index}: {reason}; kernel restarted", cell=index,
                      grade_id=cell.metadata.get("nbgrader", {}).get("grade_id"))
            self._failed.add(index)
            self._recover(index, resources)
        self.nb.cells[index] = cell
        return cell, resources

    def _fail(self, cell, ename: str, message: str) -> None:
        cell.outputs = [*cell.get("outputs", []), nbformat.v4.new_output(
            "error", ename=ename, evalue=message, traceback=[f"{ename}: {message}"])]

    def _guard(self) -> None:
        """Once per kernel, before its first cell: remember the library as it is (see nstlab.course.guard)."""
        if not self._guarded:
            self._silent(f"import nstlab.course.guard as __g\n__g.snapshot({self._imports!r})\ndel __g")
            self._guarded = True

    def _silent(self, code: str) -> None:
        """Run grader code in the kernel, outside the notebook (no output, no history)."""
        msg_id = self.kc.execute(code, silent=True, store_history=False)
        self.wait_for_reply(msg_id)

    def _recover(self, index: int, resources) -> None:
        """Restart the kernel and replay the cells before ``index`` (not the ones that failed), outputs kept."""
        while True:
            self._restarts += 1
            if self._restarts > self.max_restarts:
                self._given_up = True
                add_event(resources, "kernel", f"gave up after {self.max_restarts} restarts; later cells not run")
                return
            run_sync(self.km.restart_kernel)(now=True)
            self.kc.stop_channels()
            self.kc = None
            self.start_new_kernel_client()
            self._guarded = False
            for earlier in range(index):
                kept = self.nb.cells[earlier]
                if kept.cell_type != "code" or earlier in self._failed or not kept.source.strip():
                    continue
                try:
                    self._guard()
                    self.execute_cell(copy.deepcopy(kept), earlier, store_history=True)
                except (DeadKernelError, CellTimeoutError, RuntimeError):
                    self._failed.add(earlier)
                    add_event(resources, "kernel", f"cell {earlier}: the kernel died again while replaying it",
                              cell=earlier)
                    break
                finally:
                    self.nb.cells[earlier] = kept  # the first run's outputs are the ones graded
            else:
                return

    def output(self, outs, msg, display_id, cell_index):
        """Keep at most ``max_output_bytes`` of output per cell, and say where it was cut."""
        size = len(json.dumps(msg.get("content", {}), default=str))
        used = self._bytes.get(cell_index, 0)
        self._bytes[cell_index] = used + size
        if used + size <= self.max_output_bytes:
            return super().output(outs, msg, display_id, cell_index)
        if used <= self.max_output_bytes:
            outs.append(nbformat.v4.new_output(
                "stream", name="stdout",
                text=f"\n[output cut by the grader: this cell printed more than {self.max_output_bytes} bytes]\n"))
        return None


    async def _check_raise_for_error(self, cell, cell_index, exec_reply):
        """A cell whose execution failed counts as failed, even if no error output reached the notebook.

        nbgrader reads only a cell's outputs. Code can keep IPython from showing an error (a broken
        ``_render_traceback_`` on an exception class, a replaced ``showtraceback``), and the output cap above
        can cut it; the kernel's reply still says the cell failed, so the error is added from the reply.
        """
        content = (exec_reply or {}).get("content", {})
        shown = any(out.get("output_type") == "error" for out in cell.get("outputs", []))
        if content.get("status") == "error" and not shown:
            ename = str(content.get("ename") or "Error")[:100]
            self._fail(cell, ename, f"{str(content.get('evalue', ''))[:1000]} (the cell failed; its error was not shown)")
        await super()._check_raise_for_error(cell, cell_index, exec_reply)


class WriteReport(NbGraderPreprocessor):
    """Write what happened to this submission (events, graded) where ``nstlab course`` reads it."""

    def preprocess(self, nb, resources):
        from nstlab.course.reports import Report, write_report

        info = resources["nbgrader"]
        events = list({json.dumps(e, sort_keys=True): e for e in resources.get(EVENTS, [])}.values())
        write_report(course_folder(info["db_url"]), Report(info["student"], info["assignment"], "graded", "", events,
                                                           resources.get("nstlab_executed", "")))
        return nb, resources
