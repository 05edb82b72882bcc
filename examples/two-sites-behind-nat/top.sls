# -*- coding: utf-8 -*-
# vim: ft=yaml
---
# Topology two-sites-behind-nat: each minion gets the file named after it. Point
# pillar_roots here to use it as it is.
base:
  hub:
    - hub
  site-a:
    - site-a
  site-b:
    - site-b
