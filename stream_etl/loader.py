"""Find the topology in ``path/to/module.py[:attr]`` or ``package.module[:attr]``.

Job arguments given on the command line (``--arg key=value``) are visible to the
module while it is imported, through :func:`job_args`, like Glue job parameters.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

from stream_etl.errors import TopologyLoadError
from stream_etl.topology import Topology

_ARGS: dict[str, str] = {}


def job_args(**defaults: str) -> dict[str, str]:
    """Arguments of this run (``--arg key=value``) over ``defaults``."""
    return {**defaults, **_ARGS}


def load_topology(spec: str, *, args: Mapping[str, str] | None = None) -> Topology:
    """Import the module named by ``spec`` and return its topology (attribute ``topology``)."""
    target, _, attr = spec.partition(":")
    attr = attr or "topology"
    _ARGS.clear()
    _ARGS.update(args or {})
    module = _import(target)
    if not hasattr(module, attr):
        found = [name for name, value in vars(module).items() if isinstance(value, Topology)]
        hint = f"; it defines {', '.join(found)}: use {target}:{found[0]}" if found else ""
        msg = f"{target} has no attribute {attr!r}{hint}"
        raise TopologyLoadError(msg)
    value = getattr(module, attr)
    if callable(value) and not isinstance(value, Topology):
        value = value()
    if not isinstance(value, Topology):
        msg = f"{target}:{attr} is a {type(value).__name__}, not a stream_etl.Topology"
        raise TopologyLoadError(msg)
    return value


def _import(target: str) -> ModuleType:
    path = Path(target)
    try:
        if target.endswith(".py") or path.exists():
            if not path.is_file():
                msg = f"topology file {target} does not exist (the working directory is {Path.cwd()})"
                raise TopologyLoadError(msg)
            name = f"stream_etl_topology_{path.stem}"
            spec = importlib.util.spec_from_file_location(name, path.resolve())
            if spec is None or spec.loader is None:
                msg = f"cannot import {target} as a Python module"
                raise TopologyLoadError(msg)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            directory = str(path.resolve().parent)
            if directory not in sys.path:
                sys.path.insert(0, directory)
            spec.loader.exec_module(module)
            return module
        return importlib.import_module(target)
    except TopologyLoadError:
        raise
    except ModuleNotFoundError as exc:
        if exc.name == target:
            msg = f"no module {target!r}; give a file path such as topologies/orders.py"
            raise TopologyLoadError(msg) from exc
        raise _failed(target, exc) from exc
    except Exception as exc:
        raise _failed(target, exc) from exc


def _failed(target: str, exc: Exception) -> TopologyLoadError:
    where = traceback.extract_tb(exc.__traceback__)[-1]
    return TopologyLoadError(
        f"importing {target} failed at {where.filename}:{where.lineno}: {type(exc).__name__}: {exc}"
    )
