# -*- coding: utf-8 -*-
# vim: ft=yaml
---
# Topology mine-mesh: the pillar of every minion (top.sls). How to use the
# examples: examples/README.md.
#
# A mesh of servers declared once, with no key anywhere in pillar (issue 6).
# - Every minion gets this same pillar (top.sls gives it to '*'). A minion
#   that is a node builds wg1 from it; the others ignore it.
# - Each node makes its own private key; `mine_functions` publishes the public
#   halves (wireguard.public_keys) through the Salt mine, and every node takes
#   its peers' keys from there. Private keys never leave their minion.
# - A fresh network converges with one command on the master:
#     salt-run state.orch wireguard.orchestrate
#   Later a partial run (salt 'node2' state.apply wireguard) drops no peer: the
#   peer list comes from pillar and the mine, not from what the run targets.
# - endpoint names only the host: the port is the network's listen_port.
mine_functions:
  wireguard.public_keys: []
wireguard:
  networks:
    corp:
      interface: wg1
      listen_port: 51821
      topology: mesh
      nodes:
        node1: {address: 10.2.0.1/24, endpoint: 198.18.3.1}
        node2: {address: 10.2.0.2/24, endpoint: 198.18.3.2}
        node3: {address: 10.2.0.3/24, endpoint: 198.18.3.3}
        node4: {address: 10.2.0.4/24, endpoint: 198.18.3.4}
