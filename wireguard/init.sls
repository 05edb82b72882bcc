# -*- coding: utf-8 -*-
# vim: ft=sls
# Everything, in run order: package, config (directory, keys, conf), service,
# live peers, network (routes, forwarding).
include:
  - .package
  - .config
  - .service
  - .peers
  - .network
