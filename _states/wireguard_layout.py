"""
What ``wireguard.clean`` removes from the config directory: the formula's own files by
name, and the directory itself only when the formula made it and nothing else is left.

A second file of the ``wireguard`` state module, by concern. What belongs to the
formula is ``_utils/wgf_layout.py``.
"""

import importlib

from salt.exceptions import SaltInvocationError

import wgf_layout
import wgf_reload
import wgf_state

# After ``saltutil.sync_all`` Salt loads this module again: read the synced utils too.
importlib.reload(wgf_reload).refresh()

__virtualname__ = "wireguard"


def __virtual__():
    return __virtualname__


def config_dir_absent(name):
    """
    The config directory ``name`` holds none of the formula's files: ``<if>.conf``,
    ``<if>.key``, ``<if>.key.next``, ``<if>.clients.json`` and ``clients/<if>/`` are
    removed (with each such interface's client rates script,
    ``/var/lib/wireguard-formula/rates/<if>.sh``), anything else stays. The directory
    goes too when the formula made it (its marker file ``.wireguard-formula`` is there)
    and it is empty afterwards.
    """
    ret = wgf_state.ret(name)
    try:
        wgf_layout.check_config_dir(name)
    except SaltInvocationError as exc:
        return wgf_state.failed(ret, exc)
    paths, remove_directory, kept = wgf_layout.clean_plan(name)
    gone = paths + ([name] if remove_directory else [])
    note = f"; kept what the formula did not make: {', '.join(kept)}" if kept else ""
    if not remove_directory and not kept and paths:
        note = "; the directory stays: the formula did not make it"
    if not gone:
        ret["comment"] = f"No file of the formula in {name}{note}"
        return ret
    if __opts__["test"]:
        ret["result"] = None
        ret["changes"] = {"removed": gone}
        ret["comment"] = f"Would remove {len(gone)} path(s) of the formula{note}"
        return ret
    removed, kept = wgf_layout.clean(name)
    ret["changes"] = {"removed": removed}
    ret["comment"] = f"Removed {len(removed)} path(s) of the formula{note}"
    return ret
