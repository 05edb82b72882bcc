# -*- coding: utf-8 -*-
# vim: ft=sls
# The formula's firewall (masquerade, open_port, access of every interface):
# `table inet wireguard` with `wireguard:lookup:firewall: nftables`, the
# WIREGUARD-* chains with `iptables`, replaced in one transaction whenever pillar
# changes, live (no interface restarts); nothing of the formula's is left in
# the backend not in use. Runs before the services start, so open_port's
# limits hold from the first packet.
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set sls_package_install = tplroot ~ '.package.install' %}
{#- The map data this run already has, else map.jinja (once a run: issue 24) #}
{%- set wireguard = salt['wireguard_layout.run_map'](tplroot) %}
{%- if wireguard is none %}
{%-   from tplroot ~ "/map.jinja" import wireguard with context %}
{%- endif %}

include:
  - {{ sls_package_install }}

wireguard-firewall-rules-wireguard-firewall:
  wireguard.firewall:
    - name: {{ ('table inet wireguard') | json }}
    - config_dir: {{ wireguard.config_dir | json }}
    - require:
      - sls: {{ sls_package_install }}
