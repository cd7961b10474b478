"""Lecture demos: one module per widget, each a function that returns an ipywidgets container.

Widgets respond within a second on a CPU, draw with matplotlib into an ``ipywidgets.Image`` (so they also
work, and can be tested, without a browser), and keep their state on the returned container so tests can
set control values and check what changed. Importing this package does nothing.
"""
