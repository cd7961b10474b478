"""nstlab: the reference library of a course from the perceptron to neural style transfer.

Modules are one course idea each (``nstlab.profiles``, ``nstlab.checks``, ``nstlab.images`` ...); import the
one you need. Importing the package itself does no work: no device probing, downloads or plotting.
"""

__version__ = "0.1.0"
