# -*- coding: utf-8 -*-
# vim: ft=sls
# Removes the formula's files from the config directory (every <if>.conf, <if>.key,
# <if>.key.next, <if>.clients.json and clients/<if>/), and the directory itself only
# when the formula made it and nothing else is left in it.
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set sls_service_clean = tplroot ~ '.service.clean' %}
{%- from tplroot ~ "/map.jinja" import wireguard with context %}

include:
  - {{ sls_service_clean }}

wireguard-config-clean-file-absent:
  wireguard.config_dir_absent:
    - name: {{ wireguard.config_dir | json }}
    - require:
      - sls: {{ sls_service_clean }}
