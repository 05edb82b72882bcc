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
{%- from tplroot ~ "/map.jinja" import wireguard with context %}

include:
  - {{ sls_package_install }}

wireguard-firewall-rules-wireguard-firewall:
  wireguard.firewall:
    - name: {{ ('table inet wireguard') | json }}
    - config_dir: {{ wireguard.config_dir | json }}
    - require:
      - sls: {{ sls_package_install }}
