# -*- coding: utf-8 -*-
# vim: ft=yaml
---
# Topology mesh: each minion gets the file named after it. Point
# pillar_roots here to use it as it is.
base:
  mesh1:
    - mesh1
  mesh2:
    - mesh2
  mesh3:
    - mesh3
