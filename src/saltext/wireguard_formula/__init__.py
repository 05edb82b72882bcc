"""The wireguard formula's Salt modules as a Salt extension (``pip install``).

The wheel maps the repository's ``_modules/``, ``_states/``, ``_runners/`` and
``_beacons/`` into this package as ``modules/``, ``states/``, ``runners/`` and
``beacons/``; ``loader`` tells Salt where they are.
"""
