"""sailplan: a service mesh described as typed Python.

`import sailplan` never imports pulumi; only `sailplan.components` does.
"""

from sailplan.loader import load_mesh, load_mesh_text
from sailplan.model import Mesh, Problem, SpecError

__version__ = "0.1.0"

__all__ = ["Mesh", "Problem", "SpecError", "__version__", "load_mesh", "load_mesh_text"]
