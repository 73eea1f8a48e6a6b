"""Figures for files without pyplot, so a stage run inside a notebook leaves its backend alone.

`matplotlib.use("Agg")` switches the whole process to file-only output (after a stage ran in a
notebook, `plt.show()` drew nothing); a bare `Figure` renders to a file with the Agg canvas and never
touches pyplot's state, so nothing needs closing either.
"""

from __future__ import annotations

from typing import Any


def subplots(nrows: int = 1, ncols: int = 1, figsize: Any = None, **kwargs: Any) -> tuple[Any, Any]:
    """(figure, axes) as `plt.subplots` returns them, on a figure pyplot does not know about."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)
