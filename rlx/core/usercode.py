"""A user's Python file, loaded by path: the reward functions of ``reward.code`` and the env
classes of ``env.name: path/to/file.py:ClassName``.

A leaf module: it only finds, hashes and imports the file, and says where in it an error was
raised. What the loaded object must be is checked by its user (``rlx.rewards.code``,
``rlx.envs.user``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import traceback
from pathlib import Path


class UserCodeError(ValueError):
    """A user file that cannot be loaded. ``part`` says what is wrong: ``'file'`` (missing, or
    it raised on import) or ``'name'`` (it has no such attribute)."""

    def __init__(self, part: str, message: str):
        super().__init__(message)
        self.part = part


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def find(text: str, config_file: str | None) -> Path:
    """The absolute path of ``text``: as given when absolute, else next to the config file if
    there is one there, else from the working directory."""
    path = Path(text).expanduser()
    if not path.is_absolute() and config_file:
        beside = Path(config_file).parent / path
        path = beside if beside.is_file() else path
    return path.resolve()


def load(path: Path, name: str, what: str = "function"):
    """The attribute ``name`` of the Python file ``path`` (imported once per path and content:
    the module is named by their hash)."""
    path = Path(path)
    if not path.is_file():
        raise UserCodeError("file", f"no such file {path}")
    key = hashlib.sha256(str(path.resolve()).encode() + path.read_bytes()).hexdigest()
    module_name = f"rlx_user_code_{key[:16]}"
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # before it runs: dataclasses look it up meanwhile
        try:
            spec.loader.exec_module(module)
        except Exception as error:  # noqa: BLE001 (any failure to import is the file's)
            del sys.modules[module_name]
            raise UserCodeError("file", where(error, path)) from None
    if not hasattr(module, name):
        raise UserCodeError("name", f"{path} has no {what} {name!r}")
    return getattr(module, name)


def where(error: Exception, path: Path) -> str:
    """'file:line: Error: what' for an exception raised inside ``path`` (its innermost line
    there; a KeyError reads as the unknown name it is)."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if Path(f.filename) == path]
    line = f":{frames[-1].lineno}" if frames else ""
    what = f"unknown name {error.args[0]!r}" if isinstance(error, KeyError) else str(error)
    return f"{path}{line}: {type(error).__name__}: {what}"
