# -*- coding: utf-8 -*-
# vim: ft=sls
# Removes the formula's files from the config directory (every <if>.conf, <if>.key,
# <if>.key.next, <if>.clients.json and clients/<if>/), and the directory itself only
# when the formula made it and nothing else is left in it.
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set sls_service_clean = tplroot ~ '.service.clean' %}
{#- The map data this run already has, else map.jinja (once a run: issue 24) #}
{%- set wireguard = salt['wireguard_layout.run_map'](tplroot) %}
{%- if wireguard is none %}
{%-   from tplroot ~ "/map.jinja" import wireguard with context %}
{%- endif %}

include:
  - {{ sls_service_clean }}

wireguard-config-clean-file-absent:
  wireguard.config_dir_absent:
    - name: {{ wireguard.config_dir | json }}
    - require:
      - sls: {{ sls_service_clean }}
