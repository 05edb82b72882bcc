# -*- coding: utf-8 -*-
# vim: ft=sls
# Converges a fresh network with one command, run on the master:
#   salt-run state.orch wireguard.orchestrate
#   salt-run state.orch wireguard.orchestrate \
#     pillar='{"wireguard_orchestrate": {"tgt": "G@role:vpn", "tgt_type": "compound"}}'
# 1. sync the formula's modules to the targeted minions, and make the missing
#    preshared keys of networks with preshared_keys: true on the master
#    (salt-run wireguard.ensure_psks: from the pillar the master compiles itself;
#    the ext_pillar never makes a key);
# 2. make every private key on its minion (wireguard.config.key);
# 3. publish the public keys (mine.update; the minions' mine_functions must
#    name wireguard.public_keys, see pillar.example);
# 4. apply the whole formula, every peer's key now in the mine.
# Private keys never leave their minion: only public keys travel, in the mine.
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set orchestrate = salt['pillar.get']('wireguard_orchestrate', {}) %}
{%- set target = {'tgt': orchestrate.get('tgt', '*'),
                  'tgt_type': orchestrate.get('tgt_type', 'glob')} %}

wireguard-orchestrate-salt-function-saltutil.sync_all:
  salt.function:
    - name: saltutil.sync_all
    - tgt: {{ target.tgt | json }}
    - tgt_type: {{ target.tgt_type | json }}

wireguard-orchestrate-salt-runner-wireguard.ensure_psks:
  salt.runner:
    - name: wireguard.ensure_psks
    - tgt: {{ target.tgt | json }}
    - tgt_type: {{ target.tgt_type | json }}

wireguard-orchestrate-salt-state-keys:
  salt.state:
    - tgt: {{ target.tgt | json }}
    - tgt_type: {{ target.tgt_type | json }}
    - sls: {{ (tplroot ~ '.config.key') | json }}
    - require:
      - salt: wireguard-orchestrate-salt-function-saltutil.sync_all
      - salt: wireguard-orchestrate-salt-runner-wireguard.ensure_psks

wireguard-orchestrate-salt-function-mine.update:
  salt.function:
    - name: mine.update
    - tgt: {{ target.tgt | json }}
    - tgt_type: {{ target.tgt_type | json }}
    - require:
      - salt: wireguard-orchestrate-salt-state-keys

wireguard-orchestrate-salt-state-apply:
  salt.state:
    - tgt: {{ target.tgt | json }}
    - tgt_type: {{ target.tgt_type | json }}
    - sls: {{ tplroot | json }}
    - require:
      - salt: wireguard-orchestrate-salt-function-mine.update
