# -*- coding: utf-8 -*-
# vim: ft=sls
# Everything, in run order: package, firewall (the formula's table), config
# (directory, keys, conf), service, live peers, network (routes, forwarding).
include:
  - .package
  - .firewall
  - .config
  - .service
  - .peers
  - .network
