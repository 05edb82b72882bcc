# -*- coding: utf-8 -*-
# vim: ft=yaml
---
# Topology internet-gateway: the pillar of minion laptop (top.sls). How to use the
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
      address: [10.8.0.2/32, 'fd08::2/128']
      private_key: 'sOTrpqwZLdMMyUAvVotjvIVvFRmGGZwzZ7RtwgnOi3o='
      peers:
        gateway:
          public_key: 'rYLUgR26FLKJGZFYQpwhyQznSHFv+YwyrCrKnTuo0gA='
          endpoint: 198.18.0.1:51820
          allowed_ips: [0.0.0.0/0, '::/0']
          persistent_keepalive: 25
