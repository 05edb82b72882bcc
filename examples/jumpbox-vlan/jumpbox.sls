# -*- coding: utf-8 -*-
# vim: ft=yaml
---
# Topology jumpbox-vlan: the pillar of minion jumpbox (top.sls). How to use the
# examples, and why their keys must not be used: examples/README.md.
#
# An admin workstation reaches a VLAN (id 50) through a jumpbox that has a foot
# in both worlds: a public address, and its port vlan50 in the VLAN.
# - The interface is called jump0, not wg0, and listens on 51821: any name
#   matching [a-zA-Z0-9_=+.-]{1,15} works.
# - The jumpbox masquerades tunnel traffic into the VLAN, so hosts there need no
#   route back to the tunnel network and cannot open connections towards the
#   admin.
# - The admin sends only the jumpbox's tunnel address and the VLAN's prefix into
#   the tunnel (split tunnel), everything else goes its usual way.
wireguard:
  interfaces:
    jump0:
      address: 10.9.0.1/24
      listen_port: 51821
      private_key: '2KY/OwtwrxPCilI+pYd2WAiLpihSJLjpgkSXTv4jTkc='
      forwarding: true
      masquerade: [vlan50]
      peers:
        admin:
          public_key: 'sjTYFFY1ZEdEp8Je0hMR0ZDfuTBZJwy8nFkqJWb8q3Y='
          allowed_ips: [10.9.0.2/32]
