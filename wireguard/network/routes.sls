# -*- coding: utf-8 -*-
# vim: ft=sls
# Per running interface: the live routes through it are exactly `routes`,
# applied without a restart. The conf's PostUp adds them again at every start.
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set sls_service_running = tplroot ~ '.service.running' %}
{%- from tplroot ~ "/map.jinja" import wireguard with context %}
{%- set interfaces = salt['wireguard.pillar_interfaces'](config_dir=wireguard.config_dir) %}

include:
  - {{ sls_service_running }}

{%- for name, iface in interfaces | dictsort if iface.enabled and not iface.absent %}

{{ ('wireguard-network-routes-wireguard-routes-' ~ name) | json }}:
  wireguard.routes:
    - name: {{ name | json }}
    - routes: {{ iface.routes | json }}
    - require:
      - service: {{ ('wireguard-service-running-service-running-' ~ name) | json }}
{%- endfor %}
