# -*- coding: utf-8 -*-
# vim: ft=sls
# Converges a fresh network with one command, run on the master:
#   salt-run state.orch wireguard.orchestrate
#   salt-run state.orch wireguard.orchestrate \
#     pillar='{"wireguard_orchestrate": {"tgt": "G@role:vpn", "tgt_type": "compound"}}'
# `timeout` (seconds) there: how long the master waits for each step's minions,
# however long they take to answer Salt's "still running?" (slow or busy minions).
# 1. prepare each minion, doing only what is missing (salt-run wireguard.prepare,
#    from the pillar the master compiles itself for each minion, once): make the
#    missing preshared keys of networks with preshared_keys: true on the master (the
#    ext_pillar never makes a key), sync the formula's modules where they differ
#    from the master's, make every private key on its minion (wireguard.config.key)
#    where one is missing, and publish the public keys (mine.update; the minions'
#    mine_functions must name wireguard.public_keys, see pillar.example) where the
#    mine lacks them;
# 2. apply the whole formula, every peer's key now in the mine.
# Private keys never leave their minion: only public keys travel, in the mine.
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set orchestrate = salt['pillar.get']('wireguard_orchestrate', {}) %}
{%- set target = {'tgt': orchestrate.get('tgt', '*'),
                  'tgt_type': orchestrate.get('tgt_type', 'glob')} %}
{%- set timeout = orchestrate.get('timeout') %}

wireguard-orchestrate-salt-runner-wireguard.prepare:
  salt.runner:
    - name: wireguard.prepare
    - tgt: {{ target.tgt | json }}
    - tgt_type: {{ target.tgt_type | json }}
    - sls: {{ (tplroot ~ '.config.key') | json }}
{%- if timeout %}
    - timeout: {{ timeout | int }}
{%- endif %}

wireguard-orchestrate-salt-state-apply:
  salt.state:
    - tgt: {{ target.tgt | json }}
    - tgt_type: {{ target.tgt_type | json }}
    - sls: {{ tplroot | json }}
{%- if timeout %}
    - timeout: {{ timeout | int }}
{%- endif %}
    - require:
      - salt: wireguard-orchestrate-salt-runner-wireguard.prepare
