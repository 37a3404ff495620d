"""Operator display (PySide6 + pyqtgraph): the only package that imports Qt.

It is a client of the engine's results stream; see the [gui] issue.
"""
