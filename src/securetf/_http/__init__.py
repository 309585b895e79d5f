"""The HTTP servers' defences against clients that are slow, idle, greedy or oversized.

:mod:`.limits` is light (settings and errors, imported by settings modules); :mod:`.server`
pulls in uvicorn and starlette and is imported only where a server starts.
"""
