# -*- coding: utf-8 -*-
# vim: ft=sls
# Takes everything down and removes it, in the reverse order of init.sls
# (confirm first: no armed undo may put a file back under the clean).
include:
  - .confirm.clean
  - .hosts.clean
  - .metrics.clean
  - .network.clean
  - .peers.clean
  - .service.clean
  - .config.clean
  - .firewall.clean
  - .package.clean
