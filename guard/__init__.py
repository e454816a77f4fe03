"""guard: detect unauthorized rebroadcasts of registered reference videos.

Data flows one way: decode → signals → index → match → act. The public entry point is
:class:`guard.service.Guard`; the shells (CLI, API) call only it.
"""

__version__ = "0.1.0"
