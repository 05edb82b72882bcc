# -*- coding: utf-8 -*-
# vim: ft=yaml
---
# Topology dns-two-gateways: each minion gets the file named after it. Point
# pillar_roots here to use it as it is.
base:
  client:
    - client
  gw1:
    - gw1
  gw2:
    - gw2
