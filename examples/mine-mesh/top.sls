# -*- coding: utf-8 -*-
# vim: ft=yaml
---
# Topology mine-mesh: every minion gets all.sls; a minion that is no node
# of its network ignores it. Point pillar_roots here to use it as it is.
base:
  '*':
    - all
