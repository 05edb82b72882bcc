# -*- coding: utf-8 -*-
# vim: ft=sls
# Everything, in run order: package, confirm's arm (docs/confirm.md), firewall
# (the formula's table), config (directory, keys, conf), service, live peers,
# network (routes, forwarding), the hosts file's names, the metrics job, and
# last confirm's check. The concerns' files themselves, not their init.sls (which
# only include them): each SLS file costs a fetch and a render every run (issue 24).
include:
  - .package.install
  - .confirm.arm
  - .firewall.rules
  - .config.file
  - .service.running
  - .peers.live
  - .network.routes
  - .network.forwarding
  - .hosts
  - .metrics
  - .confirm.check
