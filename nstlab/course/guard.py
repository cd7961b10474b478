"""Runs inside a grading kernel: the library's functions stay what they were when grading began.

A check cell decides a grade by calling :mod:`nstlab.checks` and comparing with the library's reference
functions. A submission that reassigns one of them (``checks.check_close = lambda *a, **k: None``), swaps
its code (``f.__code__ = ...``) or rebinds the name ``checks`` would otherwise decide its own verdict. The
grader calls :func:`snapshot` once, before the first cell of the submission runs, and :func:`restore`
before every graded cell, both as silent executions that the notebook does not show.

Within a graded cell, a student's function may still patch the library while the check runs. So before
each graded cell the notebook's names for library modules (``checks``, ``images`` ...) are bound to frozen
clones made at the start: read-only modules whose functions are copies with globals of their own, so that
neither an assignment nor a code swap made later reaches them.

This guards against changes made through the library's names; it is one layer of several (the sandbox
keeps the grading machine safe whatever the code does, and the grader flags code that reaches for the
interpreter's internals for the instructor to look at).
"""

from __future__ import annotations

import sys
import types

# (module name, attribute) -> (object, code, defaults, keyword defaults) for every function of the library
_FUNCTIONS: dict[tuple[str, str], tuple] = {}
# module name -> the module object and a copy of its namespace, for the modules restored whole
_MODULES: dict[str, tuple[types.ModuleType, dict]] = {}
# module name -> its frozen clone
_CLONES: dict[str, types.ModuleType] = {}
# Restored attribute by attribute and whole: the check helpers hold no state a notebook may change.
WHOLE = ("nstlab.checks",)


class FrozenModule(types.ModuleType):
    """A module that refuses assignments: the library as the check cells see it while grading."""

    def __setattr__(self, name, value):
        raise AttributeError(f"{self.__name__} cannot be changed while a notebook is graded")

    __delattr__ = __setattr__


def _clone(module: types.ModuleType) -> FrozenModule:
    namespace = dict(vars(module))
    for name, value in namespace.items():
        if isinstance(value, types.FunctionType) and value.__globals__ is vars(module):
            copy = types.FunctionType(value.__code__, namespace, value.__name__, value.__defaults__,
                                      value.__closure__)
            copy.__kwdefaults__ = dict(value.__kwdefaults__) if value.__kwdefaults__ else None
            copy.__dict__.update(value.__dict__)
            copy.__qualname__, copy.__doc__, copy.__module__ = value.__qualname__, value.__doc__, value.__module__
            namespace[name] = copy
    clone = FrozenModule(module.__name__)
    vars(clone).update(namespace)
    return clone


def _imported_names(imports: str) -> list[str]:
    import ast

    names = []
    for node in ast.parse(imports).body:
        if isinstance(node, ast.Import):
            names += [a.asname or a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names += [a.asname or a.name for a in node.names]
    return names


def snapshot(imports: str = "") -> None:
    """Import what the notebook imports and remember every function of the ``nstlab`` modules loaded."""
    exec(compile(imports, "<grader>", "exec"), {})  # noqa: S102 -- the instructor's import lines
    for name, module in list(sys.modules.items()):
        if not (name == "nstlab" or name.startswith("nstlab.")) or module is None:
            continue
        _MODULES[name] = (module, dict(vars(module)))
        for attr, value in vars(module).items():
            if isinstance(value, types.FunctionType) and value.__module__ == name:
                _FUNCTIONS[name, attr] = (value, value.__code__, value.__defaults__, value.__kwdefaults__)
        _CLONES[name] = _clone(module)


def restore(namespace: dict, imports: str = "") -> None:
    """Put back every remembered function and module, then re-run the notebook's imports in ``namespace``."""
    for name, (module, saved) in _MODULES.items():
        sys.modules[name] = module
        if name in WHOLE:
            current = vars(module)
            for key in [k for k in current if k not in saved]:
                del current[key]
            current.update(saved)
    for (name, attr), (function, code, defaults, kwdefaults) in _FUNCTIONS.items():
        function.__code__, function.__defaults__, function.__kwdefaults__ = code, defaults, kwdefaults
        setattr(_MODULES[name][0], attr, function)
    exec(compile(imports, "<grader>", "exec"), namespace)  # noqa: S102 -- rebinds `checks`, `np`, ...
    for name in _imported_names(imports):
        value = namespace.get(name)
        if isinstance(value, types.ModuleType) and value.__name__ in _CLONES:
            namespace[name] = _CLONES[value.__name__]
        elif isinstance(value, types.FunctionType) and getattr(value, "__module__", None) in _CLONES:
            namespace[name] = vars(_CLONES[value.__module__]).get(value.__name__, value)
