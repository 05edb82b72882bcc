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
{#- Before the shared firewall and this interface's key (its conf, service, peers and
    live states follow the key), through require_in: Salt runs the arm first whatever
    the definition order of the included files. A failed arm of wg0 changes nothing of
    wg0, and holds back only the firewall, which every interface shares. (Alone this
    file never renders empty: its includes have states.) #}
{#- The map data this run already has, else map.jinja (once a run: issue 24) #}
{%- set wireguard = salt['wireguard_layout.run_map'](tplroot) %}
{%- if wireguard is none %}
{%-   from tplroot ~ "/map.jinja" import wireguard with context %}
{%- endif %}
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
      - wireguard: {{ ('wireguard-config-key-wireguard-private_key-' ~ name) | json }}
{%-   elif salt['file.file_exists'](iface.confirm_unit) %}

{{ ('wireguard-confirm-arm-' ~ name ~ '-off') | json }}:
  wireguard.confirm_absent:
    - name: {{ name | json }}
{%-   endif %}
{%- endfor %}
