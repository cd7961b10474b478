r"""The course's policy on the library's reference functions, and the code a grader should read twice.

Each exercise re-implements a library function of the same name (``luminance`` in 00-welcome mirrors
``nstlab.images.luminance``). Answering it by calling that very function proves nothing, so
:class:`LibraryPolicy`, an nbgrader preprocessor run after the notebook has been executed, gives the
exercise's check cells an error that scores them 0 and says why. Every other library function may be used:
01-perceptron's ``predict`` may call the library's ``step``. The rule reads the submission's source (Python's
``ast``), outside the kernel, so nothing the submission does while running can change it.

The same reading flags code that reaches into the interpreter, the kernel or the grader (``get_ipython``,
``__code__``, assignments to a library module's attributes, tensor subclasses ...) for the instructor: it
changes no score, since such code can be innocent, but it is where a grade should be checked by hand.
"""

from __future__ import annotations

import ast

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

from nstlab.course.grading import add_event, parse_cell, release_notebook

# Names whose use in a submission is flagged for the instructor: they reach into the interpreter, the kernel
# or the grader rather than compute an answer.
SUSPICIOUS_NAMES = {"get_ipython", "showtraceback",  # the kernel that reports the verdict
                    "__dict__", "vars", "__setattr__", "__code__", "__class__", "__globals__", "__builtins__",
                    "__torch_function__", "__array_ufunc__", "__array_function__",  # objects that lie
                    "_exit", "ctypes", "gc", "builtins", "settrace", "setprofile", "modules",  # the interpreter
                    "__import__", "import_module", "reload"}


def _nstlab_aliases(trees) -> set[str]:
    aliases = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                aliases |= {(a.asname or a.name.split(".")[0]) for a in node.names if a.name.split(".")[0] == "nstlab"}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "nstlab":
                aliases |= {a.asname or a.name for a in node.names}
    return aliases


def _library_names() -> dict[str, str]:
    """Public functions of the library: name -> ``module.name`` where it lives."""
    import importlib
    import pkgutil

    import nstlab

    found: dict[str, str] = {}
    for info in pkgutil.iter_modules(nstlab.__path__):
        if info.ispkg or info.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"nstlab.{info.name}")
        except Exception:  # noqa: BLE001 -- a module that cannot import here holds no reference to protect
            continue
        for name, value in vars(module).items():
            if callable(value) and not name.startswith("_") and getattr(value, "__module__", "") == module.__name__:
                found.setdefault(name, f"nstlab.{info.name}.{name}")
    return found


def _references(tree, name: str, aliases: set[str]) -> bool:
    """Whether ``tree`` reaches the library's ``name``: ``alias.name``, ``from nstlab... import name`` or getattr."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "nstlab":
            if any(a.name == name for a in node.names):
                return True
        if isinstance(node, ast.Attribute) and node.attr == name:
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in aliases | {"nstlab"} or isinstance(base, ast.Call):
                return True
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
                and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and node.args[1].value == name):
            return True
    return False


class LibraryPolicy(NbGraderPreprocessor):
    """Zero the checks of an exercise answered with the library's own function; flag reaching into internals."""

    release_directory = Unicode("", help="folder of the student release (notebooks/)").tag(config=True)

    def preprocess(self, nb, resources):
        release = release_notebook(self.release_directory, resources)
        given = {c.source for c in release.cells} if release is not None else set()
        student_cells = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"
                         and not c.metadata.get("nbgrader", {}).get("locked")
                         and (c.metadata.get("nbgrader", {}).get("solution") or c.source not in given)]
        trees = [t for t in (parse_cell(c.source) for c in nb.cells if c.cell_type == "code") if t is not None]
        aliases = _nstlab_aliases(trees)
        student_trees = [(i, parse_cell(c.source)) for i, c in student_cells]
        student_trees = [(i, t) for i, t in student_trees if t is not None]
        library = _library_names()
        for index, cell in enumerate(nb.cells):
            if not cell.metadata.get("nbgrader", {}).get("solution") or cell.cell_type != "code":
                continue
            tree = parse_cell(cell.source)
            defined = [n.name for n in (tree.body if tree else []) if isinstance(n, ast.FunctionDef | ast.ClassDef)]
            for name in (n for n in defined if n in library):
                # Inside the exercise's own cell, or a student cell that rebinds its name; the library's function
                # remains usable in every other exercise (predict may call the library's step).
                rebinding = [t for _, t in student_trees if any(
                    isinstance(node, ast.Assign) and any(isinstance(g, ast.Name) and g.id == name for g in node.targets)
                    for node in ast.walk(t))]
                if any(_references(t, name, aliases) for t in [tree, *rebinding]):
                    self._zero(nb, index, name, library[name], resources)
        for index, tree in student_trees:
            used = sorted({n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)} & SUSPICIOUS_NAMES
                          | {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} & SUSPICIOUS_NAMES
                          | {a.name for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)
                             for a in n.names} & SUSPICIOUS_NAMES
                          | self._assigned_module_attributes(tree, aliases | {"np", "torch", "numpy"})
                          | self._array_subclasses(tree))
            if used:
                add_event(resources, "flagged", f"cell {index} uses {', '.join(used)}: look at it before trusting the "
                          "grade", cell=index)
        return nb, resources

    @staticmethod
    def _array_subclasses(tree) -> set[str]:
        """Classes derived from a tensor or an array: the way to make comparisons lie."""
        return {f"a subclass of {ast.unparse(base)} ({node.name})" for node in ast.walk(tree)
                if isinstance(node, ast.ClassDef) for base in node.bases
                if isinstance(base, ast.Attribute | ast.Name) and ast.unparse(base).split(".")[-1] in
                ("Tensor", "ndarray", "Parameter")}

    @staticmethod
    def _assigned_module_attributes(tree, modules: set[str]) -> set[str]:
        names = set()
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, ast.AugAssign | ast.AnnAssign) else []
            for target in targets:
                if isinstance(target, ast.Attribute):
                    base = target.value
                    while isinstance(base, ast.Attribute):
                        base = base.value
                    if isinstance(base, ast.Name) and base.id in modules:
                        names.add(f"an assignment to {ast.unparse(target)}")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr"
                    and node.args and isinstance(node.args[0], ast.Name) and node.args[0].id in modules):
                names.add(f"setattr on {node.args[0].id}")
        return names

    def _zero(self, nb, solution_index: int, name: str, where: str, resources) -> None:
        message = (f"{name} calls the library's own {where}. The exercise is to write it yourself, so its checks "
                   f"score 0 (course policy: every other library function may be used).")
        zeroed = []
        for cell in nb.cells[solution_index + 1:]:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("solution"):
                break
            if meta.get("grade") and cell.cell_type == "code" and not any(
                    o.get("ename") == "LibraryReferenceUsed" for o in cell.get("outputs", [])):
                cell.outputs = [*cell.get("outputs", []), nbformat.v4.new_output(
                    "error", ename="LibraryReferenceUsed", evalue=message,
                    traceback=[f"LibraryReferenceUsed: {message}"])]
                zeroed.append(meta.get("grade_id"))
        add_event(resources, "policy", message, grade_ids=zeroed)
