# -*- coding: utf-8 -*-
# vim: ft=yaml
---
# Topology dns-two-gateways: the pillar of minion gw2 (top.sls). How to use the
# examples, and why their keys must not be used: examples/README.md.
#
# A client with one interface and two gateways, each the way into its own office
# LAN and each a DNS server for the client.
# - dns lists both gateways' tunnel addresses and a search domain; wg-quick
#   hands them to resolvconf (openresolv here) on up and takes them back on
#   down.
# - Each gateway peer carries only its own /32 and its office LAN, so the client
#   sends each office's traffic to the right gateway; the gateways are not peers
#   of each other and cannot reach each other through the client.
# - The interface is named corp0.
wireguard:
  interfaces:
    wg0:
      address: 10.40.0.2/24
      listen_port: 51820
      private_key: '2AKhYCWTXbaNoVzyvESb6BTKOLlhJ0z1WwaDPKMdXlI='
      forwarding: true
      peers:
        client:
          public_key: 'kB3eC4K+dzpuGJCl9qHJ9fvu0durX1oM6z7VOdrRTiE='
          allowed_ips: [10.40.0.10/32]
