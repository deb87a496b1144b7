"""Pure renderers: a validated Mesh in, plain data out (manifests as dicts, proxy configs as text).

Nothing here does I/O or imports pulumi; the CLI, the components and the sandbox all call these.
"""
