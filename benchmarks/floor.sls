# -*- coding: utf-8 -*-
# vim: ft=sls
# One state that does nothing: the floor a no-op `state.apply wireguard` is compared
# with in benchmarks/fleet_scale.py (issue 24: at most 1.5 times this, per minion).
---
benchmarks-floor-test-nop:
  test.nop
