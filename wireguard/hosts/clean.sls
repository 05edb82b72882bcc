# -*- coding: utf-8 -*-
# vim: ft=sls
# Removes the formula's blocks from /etc/hosts (the `hosts` option), one per
# interface with a conf in the config directory or in pillar. Every other line
# of the file stays.
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{#- The map data this run already has, else map.jinja (once a run: issue 24) #}
{%- set wireguard = salt['wireguard_layout.run_map'](tplroot) %}
{%- if wireguard is none %}
{%-   from tplroot ~ "/map.jinja" import wireguard with context %}
{%- endif %}
{%- from tplroot ~ "/libclean.jinja" import clean_interfaces with context %}

{%- for name in clean_interfaces %}

{{ ('wireguard-hosts-clean-file-absent-' ~ name) | json }}:
  wireguard.hosts_absent:
    - name: {{ name | json }}
{%- endfor %}
