# -*- coding: utf-8 -*-
# vim: ft=sls
# Removes the persisted forwarding sysctls. The live values stay until the
# next boot: other software may rely on forwarding. Routes through an
# interface go away with it (service.clean).
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{#- The map data this run already has, else map.jinja (once a run: issue 24) #}
{%- set wireguard = salt['wireguard_layout.run_map'](tplroot) %}
{%- if wireguard is none %}
{%-   from tplroot ~ "/map.jinja" import wireguard with context %}
{%- endif %}

wireguard-network-clean-file-absent:
  file.absent:
    - name: {{ wireguard.sysctl_file | json }}
