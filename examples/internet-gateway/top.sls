# -*- coding: utf-8 -*-
# vim: ft=yaml
---
# Topology internet-gateway: each minion gets the file named after it. Point
# pillar_roots here to use it as it is.
base:
  gateway:
    - gateway
  laptop:
    - laptop
