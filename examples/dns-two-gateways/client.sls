# -*- coding: utf-8 -*-
# vim: ft=yaml
---
# Topology dns-two-gateways: the pillar of minion client (top.sls). How to use the
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
    corp0:
      address: 10.40.0.10/32
      private_key: 'GOvozoUYJTQrP6B3fUywZDp/HyekETKw5/RmKUVhBWM='
      dns: [10.40.0.1, 10.40.0.2, corp.example]
      peers:
        gw1:
          public_key: 'j7jcZuFxIBQW9NvYu9aXDQ0C7N+5FbKtEIoGJMzK4yc='
          endpoint: 198.18.0.1:51820
          allowed_ips: [10.40.0.1/32, 172.16.1.0/24]
        gw2:
          public_key: '9ONwq7I/XF9eZcfasu4ap0dotHbXrwTSbalW15AUzEM='
          endpoint: 198.18.0.2:51820
          allowed_ips: [10.40.0.2/32, 172.16.2.0/24]
