# -*- coding: utf-8 -*-
# vim: ft=sls
# Everything, in run order: package, confirm's arm (docs/confirm.md), firewall
# (the formula's table), config (directory, keys, conf), service, live peers,
# network (routes, forwarding), the hosts file's names, the metrics job, and
# last confirm's check.
include:
  - .package
  - .confirm.arm
  - .firewall
  - .config
  - .service
  - .peers
  - .network
  - .hosts
  - .metrics
  - .confirm.check
