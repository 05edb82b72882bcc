# -*- coding: utf-8 -*-
# vim: ft=sls
# Removes the formula's firewall: `table inet wireguard`, the WIREGUARD-*
# chains and the jumps to them. Touches no other table or chain.

wireguard-firewall-clean-wireguard-firewall_absent:
  wireguard.firewall_absent:
    - name: table inet wireguard
