"""The arguments of the execution and state modules' public functions, as Salt's
command line (or an SLS) delivers them: the CLI reads each argument as YAML, so any of
them may arrive as a string, a number, a list, a mapping, a bool or None.

``guard(globals())`` at the end of a loader module wraps each of its public functions:
before the function runs, every argument is checked by its name (``RULES``), so a wrong
type is refused with a ``SaltInvocationError`` naming the argument (a state returns it
as its failure), not a traceback deep inside. The checks never show a value that could
be a key.

Plain Python, no Salt loader dunders.
"""

import functools
import inspect
import os

from salt.exceptions import SaltInvocationError

import wgf_addr


def _type_name(value):
    return type(value).__name__


def _interface(value, name):
    if wgf_addr.is_interface_name(value) or (isinstance(value, str) and len(value) <= 15):
        return wgf_addr.check_interface_name(value, name)
    # a long string could be a key given in the wrong place: say its length only
    got = f"{len(value)} characters" if isinstance(value, str) else f"a {_type_name(value)}"
    raise SaltInvocationError(f"{name}: got {got}: an interface name is 1-15 characters")


def _path(value, name):
    if isinstance(value, os.PathLike):  # from Python: a pathlib.Path is a path too
        value = os.fspath(value)
    if not isinstance(value, str):
        raise SaltInvocationError(
            f"{name}: expected a directory path (a string), got {_type_name(value)}"
        )
    if wgf_addr.LINE_BREAKING.search(value):
        raise SaltInvocationError(f"{name}: newlines and control characters are refused in a path")
    return value


def _config_dir(value, name):
    """The minion's own directory: absolute (relative to what would it be?). An empty
    one is the default."""
    value = _path(value, name)
    if value and not value.startswith("/"):
        raise SaltInvocationError(f"{name}: expected an absolute path (starting with /)")
    return value


def _file(value, name):
    """A file's path, absolute; the function checks the rest (wgf_metrics.check_textfile)."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise SaltInvocationError(
            f"{name}: expected a file's path (a string), got {_type_name(value)}"
        )
    if wgf_addr.LINE_BREAKING.search(value):
        raise SaltInvocationError(f"{name}: newlines and control characters are refused in a path")
    if not value.startswith("/"):
        raise SaltInvocationError(f"{name}: expected an absolute path (starting with /)")
    return value


def _name(value, name):
    """A peer's or client's name. The CLI reads ``1234``, ``0100`` and ``+5`` as numbers
    (100 and 5): which name was typed is lost, so a number is refused, not guessed."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise SaltInvocationError(
            f"{name}: got a number; quote a name that looks like one ({name}='\"1234\"')"
        )
    if not isinstance(value, str):
        raise SaltInvocationError(f"{name}: expected a name (a string), got {_type_name(value)}")
    return value


def _flag(value, name):
    if not isinstance(value, bool):
        raise SaltInvocationError(f"{name}: expected True or False, got {_type_name(value)}")
    return value


def _mapping(value, name):
    if not isinstance(value, dict):
        raise SaltInvocationError(f"{name}: expected a mapping, got {_type_name(value)}")
    return value


def _list(value, name):
    if not isinstance(value, (list, tuple)):
        raise SaltInvocationError(f"{name}: expected a list, got {_type_name(value)}")
    return list(value)


def _since(value, name):
    """An earlier return of ``wireguard.link_states``."""
    interfaces = value.get("interfaces") if isinstance(value, dict) else None
    at = value.get("at") if isinstance(value, dict) else None
    if (
        not isinstance(interfaces, dict)
        or isinstance(at, bool)
        or not isinstance(at, (int, float))
        or not all(isinstance(peers, dict) for peers in interfaces.values())
    ):
        raise SaltInvocationError(
            f"{name}: expected an earlier return of wireguard.link_states: a mapping with "
            "'at' (epoch seconds) and 'interfaces' (interface: {public key: link})"
        )
    return value


def _as_given(value, name):
    """Checked by the function itself (keys, addresses, numbers)."""
    return value


#: How each argument of a public function is checked, by its name. None passes where
#: it is the argument's default.
RULES = {
    "interface": _interface,
    "config_dir": _config_dir,
    "path": _path,
    "textfile": _file,
    "client": _name,
    "peer": _name,
    "qr": _as_given,
    "psk_digests": _flag,
    "scheduled": _flag,
    "keep_declared": _flag,
    "remember": _flag,
    "test": _flag,
    "pillar": _as_given,
    "orders": _as_given,  # wgf_rotate checks the orders, naming the step
    "since": _since,
    # wgf_layout checks the map data and the service names, naming the lookup key
    "values": _as_given,
    "service": _as_given,
    "link_target": _as_given,
    "peers": _list,
    "remove": _list,
    # the functions check these themselves, without showing a key
    "private_key": _as_given,
    "key": _as_given,
    "public_key": _as_given,
    "preshared_key": _as_given,
    "allowed_ips": _as_given,
    "endpoint": _as_given,
    "persistent_keepalive": _as_given,
    "stale_after": _as_given,
    "sample": _as_given,
    "cidr": _as_given,
    "name": _as_given,
    # wireguard.verify_probe: a list, or a mapping of minion id to a list (wgf_verify_report)
    "probes": _as_given,
    "hash_type": _as_given,  # wgf_modules.local_hashes checks it
}


def argument(name, value, default=None):
    """``value`` of the argument ``name``, checked; raise naming the argument."""
    wgf_addr.no_huge_numbers(value, name)
    if value is None and default is None:
        return None
    return RULES.get(name, _as_given)(value, name)


def checked(func, refused=None):
    """``func`` that checks its arguments by ``RULES`` first. A state module gives
    ``refused(arguments, exc)``: a state returns its failure, it does not raise."""
    signature = inspect.signature(func)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:  # Python's own message on a wrong call, as without the check
            return func(*args, **kwargs)
        try:
            for name, value in bound.arguments.items():
                kind = signature.parameters[name].kind
                if kind is inspect.Parameter.VAR_KEYWORD:  # names could be keys: none shown
                    wgf_addr.no_huge_numbers(list(value.values()), "a keyword argument")
                elif kind is inspect.Parameter.VAR_POSITIONAL:
                    wgf_addr.no_huge_numbers(value, "an argument")
                else:
                    bound.arguments[name] = argument(
                        name, value, signature.parameters[name].default
                    )
        except SaltInvocationError as exc:
            if refused is None:
                raise
            return refused(bound.arguments, exc)
        return func(*bound.args, **bound.kwargs)

    return wrapper


def public_functions(namespace):
    """The names of the public functions a module (its ``globals()``) defines."""
    return [
        name
        for name, value in namespace.items()
        if not name.startswith("_")
        and inspect.isfunction(value)
        and value.__module__ == namespace["__name__"]
    ]


def guard(namespace, refused=None):
    """Wrap every public function of a module (its ``globals()``) with ``checked``."""
    for name in public_functions(namespace):
        if not hasattr(namespace[name], "__wrapped__"):
            namespace[name] = checked(namespace[name], refused)


def state_refused(arguments, exc):
    """A state's failed return when its arguments are refused."""
    name = arguments.get("name")
    return {
        "name": name if isinstance(name, str) else wgf_addr.shown(name),
        "result": False,
        "changes": {},
        "comment": str(exc),
    }
