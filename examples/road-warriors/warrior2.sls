# -*- coding: utf-8 -*-
# vim: ft=yaml
---
# Topology road-warriors: the pillar of minion warrior2 (top.sls). How to use the
# examples, and why their keys must not be used: examples/README.md.
#
# A server for clients that come and go from anywhere, each behind some NAT
# (here two NAT routers whose LANs even use the same 192.168.1.0/24).
# - The server has no endpoint for them: it cannot know one and never starts a
#   handshake; it answers whoever authenticates and remembers where they came
#   from.
# - The warriors set persistent_keepalive, so their NAT mapping stays open and
#   the server can reach them at any time, not only right after they sent
#   something.
# - The server forwards, so warriors reach each other through it.
wireguard:
  interfaces:
    wg0:
      address: 10.20.0.12/32
      private_key: 'YFUVUyjqXUCJjNO0hzcFqDLWx/54pZ9tC/CCm/aGyFY='
      peers:
        server:
          public_key: '1ERmypAbmVdaAK7GtjBr8fZN+cbJRCgT/HQqZIwIiQo='
          endpoint: 198.18.0.1:51820
          allowed_ips: [10.20.0.0/24]
          persistent_keepalive: 25
