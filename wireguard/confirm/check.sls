# -*- coding: utf-8 -*-
# vim: ft=sls
# Per interface with `confirm` on (docs/confirm.md): last in the run, with no
# requisite (it must run even when a change failed), the probes confirm the
# change or it is undone; nothing armed, nothing to check.
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{#- The map data this run already has, else map.jinja (once a run: issue 24) #}
{%- set wireguard = salt['wireguard_layout.run_map'](tplroot) %}
{%- if wireguard is none %}
{%-   from tplroot ~ "/map.jinja" import wireguard with context %}
{%- endif %}
{%- set interfaces = salt['wireguard.pillar_interfaces'](config_dir=wireguard.config_dir) %}

{%- for name, iface in interfaces | dictsort
      if iface.confirm and iface.enabled and not iface.absent %}

{{ ('wireguard-confirm-check-' ~ name) | json }}:
  wireguard.confirm_checked:
    - name: {{ name | json }}
    - config_dir: {{ wireguard.config_dir | json }}
    - order: last
{%- else %}

wireguard-confirm-check-test-nop:
  test.nop:
    - name: no interface with confirm on
{%- endfor %}
