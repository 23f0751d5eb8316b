"""The real engine: whatsmeow (Go) through neonize, one spawned process per session.

Nothing here may import neonize at module level: it loads a Go runtime that is not fork-safe
and can abort its process, so only the per-session child process (`child.py`) imports it.
"""
