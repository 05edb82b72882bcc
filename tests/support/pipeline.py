"""The pillar pipeline (``_utils/wgf_pipeline.py``) run as the execution module runs it:
compile, ask the mine for exactly the minions ``needs`` names, resolve."""

import wgf_pipeline


def interfaces(pillar, minion="minion1", mine=None, **facts):
    """The interfaces ``minion`` gets from its ``wireguard`` pillar. ``mine``: a function
    of a list of minion ids, as the loader's mine lookup (asked only when a peer needs
    it; None: peers named by ``minion`` stay unresolved); ``facts``: the other fields
    of ``wgf_pipeline.Facts``."""
    return run(pillar, minion, mine, **facts)["interfaces"]


def run(pillar, minion="minion1", mine=None, **facts):
    """``{"settings", "interfaces"}`` of the pipeline (see ``interfaces``)."""
    compiled = wgf_pipeline.compile_pillar(pillar, minion)
    wanted = wgf_pipeline.needs(compiled)["minions"]
    published = None if mine is None else mine(wanted) if wanted else {}
    facts = wgf_pipeline.Facts(minion, published_keys=published, **facts)
    return wgf_pipeline.resolve(compiled, facts)
