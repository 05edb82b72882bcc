# -*- coding: utf-8 -*-
# vim: ft=yaml
---
# Topology mine-hub: the pillar of every minion (top.sls). How to use the
# examples: examples/README.md.
#
# Branch offices behind NAT, joined through one public hub, declared once.
# - topology: hub: the spokes peer only with the hub, whose AllowedIPs on each
#   spoke cover the whole 10.3.0.0/24 network; the hub peers with every spoke
#   and forwards between them (the formula turns forwarding on there).
# - The spokes have no endpoint: they are behind NAT and dial the hub, with a
#   PersistentKeepalive of 25 s that keeps their NAT mapping open.
# every minion publishes its public keys (never a private one) to the mine
mine_functions:
  wireguard.public_keys: []
wireguard:
  networks:
    branches:
      interface: wg2
      listen_port: 51822
      topology: hub
      hubs: [hub]
      nodes:
        hub: {address: 10.3.0.1/24, endpoint: 198.18.4.1}
        spoke1: {address: 10.3.0.11/24}
        spoke2: {address: 10.3.0.12/24}
