"""
Which copy of the formula's modules a minion runs, as one digest (issue 24): the
orchestration syncs a minion only when its copy differs from the master's.

The formula's files are those Salt syncs into a minion's extension module directory
(``<extmods>/<kind>/<name>``, from ``salt://_<kind>/<name>``): ``wireguard*.py`` among
modules, states and beacons, ``wgf_*.py`` among utils. The digest is taken over their
paths and contents' hashes, so the master (from its file server) and the minion (from
its files) reach the same value for the same files. Nothing here holds a key.
"""

import hashlib
import os

#: Per kind of synced module, the prefix of the formula's file names.
PREFIXES = {"modules": "wireguard", "states": "wireguard", "beacons": "wireguard", "utils": "wgf_"}
HASH_TYPE = "sha256"


def formula_file(path):
    """``<kind>/<name>`` of ``path`` (``_modules/wireguard.py`` on the file server,
    ``modules/wireguard.py`` in extmods) when it is one of the formula's synced files,
    else None."""
    parts = path.split("/")
    if len(parts) != 2:
        return None
    kind, name = parts[0].removeprefix("_"), parts[1]
    prefix = PREFIXES.get(kind)
    if prefix is None or not name.startswith(prefix) or not name.endswith(".py"):
        return None
    return f"{kind}/{name}"


def digest(hashes):
    """One value for ``{<kind>/<name>: content hash}``; None for no file at all."""
    if not hashes:
        return None
    text = "".join(f"{path} {value}\n" for path, value in sorted(hashes.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def local_hashes(extmods, hash_type=HASH_TYPE):
    """``{<kind>/<name>: hash}`` of the formula's files under a minion's ``extmods``."""
    if not isinstance(hash_type, str) or hash_type not in hashlib.algorithms_guaranteed:
        raise ValueError("expected the name of a hash hashlib offers (such as sha256)")
    found = {}
    for kind in PREFIXES:
        directory = os.path.join(extmods, kind)
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            path = formula_file(f"{kind}/{name}")
            if path is None:
                continue
            with open(os.path.join(directory, name), "rb") as handle:
                found[path] = hashlib.new(hash_type, handle.read()).hexdigest()
    return found


def interfaces(pillar, minion, member_networks):
    """The interfaces ``pillar`` gives ``minion``: its ``wireguard:interfaces`` and the
    interface of each network it is a node of (``member_networks``:
    ``wgf_networks.member_networks``). Names only; the pillar's own check is the
    apply's."""
    wireguard = pillar.get("wireguard") if isinstance(pillar, dict) else None
    wireguard = wireguard if isinstance(wireguard, dict) else {}
    found = set()
    declared = wireguard.get("interfaces")
    if isinstance(declared, dict):
        found |= {str(name) for name in declared}
    for _, settings in member_networks(wireguard.get("networks"), minion):
        found.add(settings["interface"])
    return sorted(found)


def plan(master_digest, answers, published, interfaces, synced=False):
    """What the orchestration must do before it applies the formula, per minion:
    ``sync`` (its modules differ from the master's, or it did not answer with a
    digest), ``keys`` (an interface its pillar gives it has no key yet) and ``publish``
    (the mine's public keys differ from the minion's). ``answers`` is ``{minion:
    wireguard.orchestration_facts() or None}``, ``published`` ``{minion: {interface:
    public key}}`` from the mine, ``interfaces`` ``{minion: [interface]}`` from the
    pillar the master compiles for it. With ``synced`` (the answers of minions just
    synced) none is synced again (from another saltenv its copy may differ), unless it
    did not answer. An answer that is not the facts' shape counts as no answer."""
    todo = {"sync": [], "keys": [], "publish": []}
    for minion, facts in sorted(answers.items()):
        if not isinstance(facts, dict) or (not synced and facts.get("modules") != master_digest):
            todo["sync"].append(minion)
            continue
        keys = facts.get("public_keys") if isinstance(facts.get("public_keys"), dict) else {}
        if set(interfaces.get(minion, ())) - set(keys):
            todo["keys"].append(minion)
        elif keys != published.get(minion, {}):
            todo["publish"].append(minion)
    return todo
