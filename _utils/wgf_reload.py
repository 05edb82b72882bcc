"""Read the formula's utils again after ``saltutil.sync_all`` brought new ones.

A running minion keeps the utils an earlier load imported in ``sys.modules``; a loader
module that Salt loads again would otherwise run with the old ones. Every loader file
calls ``refresh()`` once at the top: it reloads each util whose file changed since it was
loaded (or that it has not seen yet), and every util that imports one of those, each
after the utils it imports. No list to keep: the utils are found by name.
"""

import importlib
import os
import sys
import types

PREFIX = "wgf_"
#: The attribute that remembers the file a module was loaded from, and its mtime.
STAMP = "__wgf_loaded_from__"


def _stamp(module):
    path = getattr(module, "__file__", None)
    try:
        return (path, os.stat(path).st_mtime_ns) if path else None
    except OSError:
        return None


def _imports(module, prefix):
    """The names of the utils ``module`` uses: modules it imported, and the modules of
    the functions and classes it imported from them."""
    found = set()
    for value in vars(module).values():
        if isinstance(value, types.ModuleType):
            name = value.__name__
        elif isinstance(value, (types.FunctionType, type)):
            name = getattr(value, "__module__", "") or ""
        else:
            continue
        if name.startswith(prefix) and name != module.__name__:
            found.add(name)
    return found


def _order(loaded, prefix):
    """The names of ``loaded``, each after the utils it imports (a cycle is cut where
    it closes)."""
    order, done = [], set()

    def visit(name, path):
        if name in done or name in path or name not in loaded:
            return
        for dep in sorted(_imports(loaded[name], prefix)):
            visit(dep, path | {name})
        done.add(name)
        order.append(name)

    for name in sorted(loaded):
        visit(name, frozenset())
    return order


def refresh(prefix=PREFIX):
    """Reload the loaded utils named ``prefix*`` that changed on disk, and those that
    import them, in dependency order; return the names reloaded."""
    loaded = {
        name: module
        for name, module in list(sys.modules.items())
        if name.startswith(prefix) and name != __name__ and module is not None
    }
    stale = {
        name for name, module in loaded.items() if getattr(module, STAMP, None) != _stamp(module)
    }
    reloaded = []
    for name in _order(loaded, prefix):
        module = loaded[name]
        if name in stale or _imports(module, prefix) & set(reloaded):
            stamp = _stamp(module)
            importlib.reload(module)
            setattr(module, STAMP, stamp)
            reloaded.append(name)
    return reloaded
