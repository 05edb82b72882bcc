# -*- coding: utf-8 -*-
# vim: ft=yaml
---
# Topology jumpbox-vlan: each minion gets the file named after it. Point
# pillar_roots here to use it as it is.
base:
  admin:
    - admin
  jumpbox:
    - jumpbox
