# -*- coding: utf-8 -*-
# vim: ft=yaml
---
# Topology laptop-server: the pillar of minion server (top.sls). How to use the
# examples, and why their keys must not be used: examples/README.md.
#
# The simplest tunnel: one server with a public address, one laptop that dials
# it.
# - The server has no endpoint for the laptop: it learns it from the laptop's
#   handshake, so the laptop may roam. The laptop names the server by host name
#   (resolved when the interface comes up; the lab puts it into the laptop's
#   /etc/hosts).
# - AllowedIPs on the server is the laptop's single /32: a packet from the
#   laptop with any other source address is dropped (cryptokey routing).
# - A preshared key adds a symmetric layer on top of the Curve25519 handshake.
wireguard:
  interfaces:
    wg0:
      address: 10.0.0.1/24
      listen_port: 51820
      private_key: 'uARuNhjheuDZreCuk5q/c7x2IEEAm1h5fYUy86lWWWI='
      peers:
        laptop:
          public_key: 'GVzXgtFq+HrUL7FxEfsvDe22zdNCWHDRhBs8SkNS62g='
          preshared_key: 'UOzod7ORhkkrHl0lWx47s0H9zer9ze6dXoaKzBmebRk='
          allowed_ips: [10.0.0.2/32]
