# -*- coding: utf-8 -*-
# vim: ft=yaml
---
# Topology road-warriors: each minion gets the file named after it. Point
# pillar_roots here to use it as it is.
base:
  server:
    - server
  warrior1:
    - warrior1
  warrior2:
    - warrior2
