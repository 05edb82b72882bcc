# -*- coding: utf-8 -*-
# vim: ft=sls
# First in wireguard.clean: an undo still armed is disarmed (so no timer puts a
# file back under the clean), the boot-time unit and the recorded state removed.
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import wireguard with context %}
{%- set interfaces = salt['wireguard.pillar_interfaces'](config_dir=wireguard.config_dir) %}

{%- for name, iface in interfaces | dictsort %}

{{ ('wireguard-confirm-clean-' ~ name) | json }}:
  wireguard.confirm_absent:
    - name: {{ name | json }}
{%- endfor %}
