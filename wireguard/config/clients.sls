# -*- coding: utf-8 -*-
# vim: ft=sls
# Per interface with clients (devices without Salt): their addresses from the
# pool, kept in <config_dir>/<if>.clients.json, and their keys, made once on
# this minion in 0600 files under <config_dir>/clients/<if>/. The keys never
# pass through this template: the wireguard.clients state makes and reads them.
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set sls_config_key = tplroot ~ '.config.key' %}
{#- The map data this run already has, else map.jinja (once a run: issue 24) #}
{%- set wireguard = salt['wireguard_layout.run_map'](tplroot) %}
{%- if wireguard is none %}
{%-   from tplroot ~ "/map.jinja" import wireguard with context %}
{%- endif %}
{%- set config_dir = wireguard.config_dir %}
{%- set interfaces = salt['wireguard.pillar_interfaces'](config_dir=config_dir) %}

include:
  - {{ sls_config_key }}

{%- for name, iface in interfaces | dictsort if iface.clients_managed and not iface.absent %}

{{ ('wireguard-config-clients-wireguard-clients-' ~ name) | json }}:
  wireguard.clients:
    - name: {{ name | json }}
    - config_dir: {{ config_dir | json }}
    - require:
      - wireguard: {{ ('wireguard-config-key-wireguard-private_key-' ~ name) | json }}
{%- endfor %}
