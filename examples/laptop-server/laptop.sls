# -*- coding: utf-8 -*-
# vim: ft=yaml
---
# Topology laptop-server: the pillar of minion laptop (top.sls). How to use the
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
      address: 10.0.0.2/32
      private_key: '8AI6Uwcbp7Rd/6AkL/eLxBPW852NEcLcNAcy8qtkzEM='
      peers:
        server:
          public_key: 'bhH5QuUtQess7sc76O95YwprHLK9r/xMH0DmohV2txM='
          preshared_key: 'UOzod7ORhkkrHl0lWx47s0H9zer9ze6dXoaKzBmebRk='
          endpoint: server.example.net:51820
          allowed_ips: [10.0.0.0/24]
