# -*- coding: utf-8 -*-
# vim: ft=yaml
---
# Topology internet-gateway: the pillar of minion gateway (top.sls). How to use the
# examples, and why their keys must not be used: examples/README.md.
#
# A full tunnel: the laptop sits behind its home NAT router and sends
# everything, 0.0.0.0/0 and ::/0, to the gateway, which masquerades it out of
# its public interface.
# - With table auto (the default) wg-quick puts the default routes into a
#   routing table of their own with a fwmark rule, so the encrypted packets
#   themselves still leave through the laptop's normal default route.
# - forwarding: true turns on IPv4 forwarding and, because the interface has an
#   IPv6 address, IPv6 forwarding; masquerade NATs tunnel traffic leaving eth0
#   in the formula's firewall (`table inet wireguard`, IPv4 and IPv6), changed live.
# - The laptop behind NAT sets persistent_keepalive so the NAT mapping stays
#   open.
wireguard:
  interfaces:
    wg0:
      address: [10.8.0.1/24, 'fd08::1/64']
      listen_port: 51820
      private_key: 'cAm4dkpE3yLmYC29RR69RAPat+inczo96s6MBbecTGk='
      forwarding: true
      masquerade: [eth0]
      peers:
        laptop:
          public_key: 'pI+O8F+6pIXCu9aOelIpb+maqOZNjzaSkPzUbS5VB0E='
          allowed_ips: [10.8.0.2/32, 'fd08::2/128']
