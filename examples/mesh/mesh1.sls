# -*- coding: utf-8 -*-
# vim: ft=yaml
---
# Topology mesh: the pillar of minion mesh1 (top.sls). How to use the
# examples, and why their keys must not be used: examples/README.md.
#
# Three servers with public addresses, each a peer of the other two (full mesh).
# - Every peer has an endpoint, so either side can start the handshake.
# - Each peer's allowed_ips is exactly its tunnel /32: the interface's /24
#   address puts the whole tunnel network onto wg0, and cryptokey routing picks
#   the peer.
wireguard:
  interfaces:
    wg0:
      address: 10.10.0.1/24
      listen_port: 51820
      private_key: 'OMAWUKssE/CxQQyZNapd09c+YSZRptFWHNeP4BPNCEE='
      peers:
        mesh2:
          public_key: 'o1uteuVMiyuG1k2dMsi5fLR42ybYWCPaymrdmm2r/Vk='
          endpoint: 198.18.0.2:51820
          allowed_ips: [10.10.0.2/32]
        mesh3:
          public_key: 'bKA/tQpWYRFtIAZxR+gYhl0J2KB4RXFYQoKbR9b5XRo='
          endpoint: 198.18.0.3:51820
          allowed_ips: [10.10.0.3/32]
