# -*- coding: utf-8 -*-
# vim: ft=sls
# Per interface with `confirm` on (docs/confirm.md): after the packages and
# before the run's first change (the firewall, the config directory and all that
# follows it), the undo of a change to the running interface is armed; with
# confirm off, what an earlier confirm left (its boot-time unit) is removed.
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set sls_package_install = tplroot ~ '.package.install' %}
{%- set sls_firewall_rules = tplroot ~ '.firewall.rules' %}
{%- set sls_config_key = tplroot ~ '.config.key' %}
{%- from tplroot ~ "/map.jinja" import wireguard with context %}
{%- set interfaces = salt['wireguard.pillar_interfaces'](config_dir=wireguard.config_dir) %}

include:
  - {{ sls_package_install }}
  - {{ sls_firewall_rules }}
  - {{ sls_config_key }}

{%- for name, iface in interfaces | dictsort %}
{%-   if iface.confirm and iface.enabled and not iface.absent %}

{{ ('wireguard-confirm-arm-' ~ name) | json }}:
  wireguard.confirm_armed:
    - name: {{ name | json }}
    - config_dir: {{ wireguard.config_dir | json }}
    - require:
      - sls: {{ sls_package_install }}
    - require_in:
      - wireguard: wireguard-firewall-rules-wireguard-firewall
      - file: wireguard-config-key-file-directory
{%-   elif salt['file.file_exists'](iface.confirm_unit) %}

{{ ('wireguard-confirm-arm-' ~ name ~ '-off') | json }}:
  wireguard.confirm_absent:
    - name: {{ name | json }}
{%-   endif %}
{%- endfor %}
