# -*- coding: utf-8 -*-
# vim: ft=sls
# Removes the config directory: every conf and private key in it.
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set sls_service_clean = tplroot ~ '.service.clean' %}
{%- from tplroot ~ "/map.jinja" import wireguard with context %}

include:
  - {{ sls_service_clean }}

wireguard-config-clean-file-absent:
  file.absent:
    - name: {{ wireguard.config_dir | json }}
    - require:
      - sls: {{ sls_service_clean }}
