# -*- coding: utf-8 -*-
# vim: ft=sls
# Removes the packages install.sls adds, except resolvconf: other software
# may rely on it for DNS.
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set sls_config_clean = tplroot ~ '.config.clean' %}
{#- The map data this run already has, else map.jinja (once a run: issue 24) #}
{%- set wireguard = salt['wireguard_layout.run_map'](tplroot) %}
{%- if wireguard is none %}
{%-   from tplroot ~ "/map.jinja" import wireguard with context %}
{%- endif %}
{%- set pkgs = [wireguard.pkgs.tools] + wireguard.pkgs.get('extra', []) %}
{%- if wireguard.install_go and wireguard.pkgs.go %}
{%-   do pkgs.append(wireguard.pkgs.go) %}
{%- endif %}

include:
  - {{ sls_config_clean }}

wireguard-package-clean-pkg-removed:
  pkg.removed:
    - pkgs: {{ pkgs | json }}
    - require:
      - sls: {{ sls_config_clean }}
