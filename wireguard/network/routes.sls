# -*- coding: utf-8 -*-
# vim: ft=sls
# Per running interface, after its peers: the live interface is changed in place
# to what a restart would build from its conf (addresses, MTU, DNS, key, port,
# fwmark, the routes wg-quick derives from AllowedIPs, and `routes`), without a
# restart. The conf's lines build the same at every start.
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set sls_service_running = tplroot ~ '.service.running' %}
{#- The map data this run already has, else map.jinja (once a run: issue 24) #}
{%- set wireguard = salt['wireguard_layout.run_map'](tplroot) %}
{%- if wireguard is none %}
{%-   from tplroot ~ "/map.jinja" import wireguard with context %}
{%- endif %}
{%- set interfaces = salt['wireguard.pillar_interfaces'](config_dir=wireguard.config_dir) %}

include:
  - {{ sls_service_running }}

{%- for name, iface in interfaces | dictsort if iface.enabled and not iface.absent %}

{{ ('wireguard-network-routes-wireguard-interface-' ~ name) | json }}:
  wireguard.interface:
    - name: {{ name | json }}
    - config_dir: {{ wireguard.config_dir | json }}
    - require:
      - service: {{ ('wireguard-service-running-service-running-' ~ name) | json }}
{%- endfor %}
