# -*- coding: utf-8 -*-
# vim: ft=yaml
---
# Topology jumpbox-vlan: the pillar of minion admin (top.sls). How to use the
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
      address: 10.9.0.2/32
      private_key: '6Iveq+AAXZr4kOKqUwhWOk5+t4KDwzH8GBdtdO5O2F4='
      peers:
        jumpbox:
          public_key: '1KQ3Em44swBZWUMwcb3loXI3kkG2P6MV49QuQd5XDUw='
          endpoint: 198.18.0.1:51821
          allowed_ips: [10.9.0.1/32, 172.16.50.0/24]
