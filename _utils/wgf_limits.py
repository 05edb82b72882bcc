"""A client's ``limits`` (issue 23): ``rate``, ``quota`` and ``period``, parsed and checked.

Pure: what the pillar says, as numbers. ``rate`` is in bit/s (``kbit``, ``mbit``,
``gbit``: powers of 1000), ``quota`` in bytes (``MiB``, ``GiB``, ``TiB``: powers of
1024) per ``period`` (``day``, ``week``, ``month``, in UTC; ``month`` when a quota gives
none). Enforcing them (the firewall, the counters) reads this normalised shape::

    {"rate": 50000000, "quota": 10737418240, "period": "month"}   # or None: no limits
"""

import re

from salt.exceptions import SaltInvocationError

from wgf_addr import shown

KEYS = ("rate", "quota", "period")
RATE_UNITS = {"kbit": 10**3, "mbit": 10**6, "gbit": 10**9}
QUOTA_UNITS = {"MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
PERIODS = ("day", "week", "month")
DEFAULT_PERIOD = "month"
_AMOUNT = re.compile(r"\s*(-?)(\d{1,12})(?:\.(\d{1,6}))?\s*([A-Za-z]*)\s*")


def _amount(value, units, where, what):
    """``value`` (``"50mbit"``, ``"1.5GiB"``) as an integer of the base unit; a unit of
    ``units`` (any letter case) is required, and the amount must be more than 0."""
    names = ", ".join(units)
    match = _AMOUNT.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise SaltInvocationError(
            f"{where}: {shown(value)} is no {what}: a number and a unit ({names}), e.g. "
            f"'10{next(iter(units))}'"
        )
    sign, whole, fraction, unit = match.groups()
    factor = {u.lower(): f for u, f in units.items()}.get(unit.lower())
    if factor is None:
        raise SaltInvocationError(
            f"{where}: {shown(value)} has no known unit; the unit is one of {names}"
        )
    fraction = fraction or ""
    amount = (int(whole + fraction) * factor) // 10 ** len(fraction)
    if sign or amount <= 0:
        raise SaltInvocationError(f"{where}: {shown(value)} is not more than 0")
    return amount


def rate(value, where):
    """A rate in bit/s from ``"50mbit"``."""
    return _amount(value, RATE_UNITS, where, "rate")


def quota(value, where):
    """A quota in bytes from ``"10GiB"``."""
    return _amount(value, QUOTA_UNITS, where, "quota")


def limits(value, where):
    """Pillar's ``limits`` normalised (see the module), or None when it sets none;
    raise naming ``where`` and the key on anything else."""
    if value is None or value == {}:
        return None
    if not isinstance(value, dict):
        raise SaltInvocationError(
            f"{where}: a mapping of {', '.join(KEYS)}, got {type(value).__name__}"
        )
    unknown = sorted(str(k) for k in value if k not in KEYS)
    if unknown:
        raise SaltInvocationError(
            f"{where}: unknown key {shown(unknown[0])}; known keys: {', '.join(KEYS)}"
        )
    out = {
        "rate": rate(value["rate"], f"{where}, rate") if value.get("rate") is not None else None,
        "quota": (
            quota(value["quota"], f"{where}, quota") if value.get("quota") is not None else None
        ),
        "period": None,
    }
    period = value.get("period")
    if period is not None:
        if out["quota"] is None:
            raise SaltInvocationError(f"{where}, period: a period needs a 'quota' to count")
        if period not in PERIODS:
            raise SaltInvocationError(
                f"{where}, period: {shown(period)} is not one of {', '.join(PERIODS)}"
            )
    if out["quota"] is not None:
        out["period"] = period or DEFAULT_PERIOD
    if out["rate"] is None and out["quota"] is None:
        return None
    return out
