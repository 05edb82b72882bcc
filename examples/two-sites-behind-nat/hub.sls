# -*- coding: utf-8 -*-
# vim: ft=yaml
---
# Topology two-sites-behind-nat: the pillar of minion hub (top.sls). How to use the
# examples, and why their keys must not be used: examples/README.md.
#
# Two sites, each behind its own NAT router, joined through a hub with a public
# address. Neither site can reach the other directly: both dial the hub, which
# forwards between them. LAN hosts route the other site's prefix to their site
# gateway.
# - The site gateways use table: 'off' and list their routes themselves:
#   wg-quick then installs no route for AllowedIPs, and `routes` says exactly
#   which prefixes go into the tunnel (live, and again at every start).
# - Hub and site gateways forward; the sites keep their NAT mapping open with
#   persistent_keepalive, which also lets the hub reach them first.
# - Each site's AllowedIPs on the hub is its tunnel /32 plus its LAN: site A
#   cannot send packets claiming to come from site B's LAN.
# - Preshared keys on both hub links.
wireguard:
  interfaces:
    wg0:
      address: 10.30.0.1/24
      listen_port: 51820
      private_key: 'IBEx2kIPdSKvtPwA5bnA8l1UFXA/psvhNGG6vT6tN2U='
      forwarding: true
      peers:
        site-a:
          public_key: 'CulDir+O0+tMAGjhIqLAtCWfH8avGBGBbI6s0UhTgmg='
          preshared_key: 'dTZSgu4auZOjHX/4EThDhfPDantAwcV2wxq4eBZ/+Zo='
          allowed_ips: [10.30.0.2/32, 192.168.1.0/24]
        site-b:
          public_key: 'XVONGi8vl7zfRwBkGeUOxXJP0DYhOR2fBj9YjEIsYQQ='
          preshared_key: 'iCpAzYPq/4dH0dvhLNCMPtfY+j/Wgx81wO+TQvljiAU='
          allowed_ips: [10.30.0.3/32, 192.168.2.0/24]
