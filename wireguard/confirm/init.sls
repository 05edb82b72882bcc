# -*- coding: utf-8 -*-
# vim: ft=sls
# Confirmed changes (docs/confirm.md): arm.sls before the first change, check.sls
# after the last (wireguard/init.sls includes them in those places).
include:
  - .arm
  - .check
