# -*- coding: utf-8 -*-
# vim: ft=sls
# Removes every live peer of the formula's interfaces that are up. Peers live
# only in the running interface: service.clean then takes it down.
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import wireguard with context %}
{%- from tplroot ~ "/libclean.jinja" import clean_interfaces with context %}
{%- set live = salt['wireguard.interfaces']() if salt['cmd.which']('wg') else [] %}

{%- for name in clean_interfaces if name in live %}

{{ ('wireguard-peers-clean-wireguard-peers_purged-' ~ name) | json }}:
  wireguard.peers_purged:
    - name: {{ name | json }}
    - keep: []
{%- else %}

wireguard-peers-clean-test-nop:
  test.nop:
    - name: no live WireGuard interface to purge
{%- endfor %}
