# -*- coding: utf-8 -*-
# vim: ft=sls
# Takes everything down and removes it, in the reverse order of init.sls.
include:
  - .network.clean
  - .peers.clean
  - .service.clean
  - .config.clean
  - .firewall.clean
  - .package.clean
