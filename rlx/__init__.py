"""rlx: a JAX-native RL engine for robot control with a composable, differentiable reward layer."""

import os as _os

__version__ = "0.1.0"

from rlx.core import runtime as _runtime  # noqa: E402,F401  (sets XLA's CPU flags before JAX starts)

# In a source checkout, envs/ and rewards/ sit beside rlx/ and install as rlx.envs and
# rlx.rewards. So that `python -m rlx` also works from the repo root (where the source tree
# shadows the installed package), let subpackages be found one level up there. An installed
# rlx holds rlx/envs itself and is untouched.
_here = _os.path.dirname(_os.path.abspath(__file__))
if not _os.path.isdir(_os.path.join(_here, "envs")):
    _root = _os.path.dirname(_here)
    if _os.path.isfile(_os.path.join(_root, "envs", "__init__.py")):
        __path__.append(_root)
