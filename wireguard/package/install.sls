# -*- coding: utf-8 -*-
# vim: ft=sls
# The tools, plus resolvconf where an interface sets `dns` and the OS needs it.
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import wireguard with context %}
{#- Validated pillar, secrets removed; a bad pillar fails here, before any state runs. #}
{%- set interfaces = salt['wireguard.pillar_interfaces'](config_dir=wireguard.config_dir) %}
{%- set pkgs = [wireguard.pkgs.tools] + wireguard.pkgs.get('extra', []) %}
{%- if wireguard.pkgs.resolvconf %}
{%-   for iface in interfaces.values() if iface.dns and not iface.absent %}
{%-     if loop.first %}
{%-       do pkgs.append(wireguard.pkgs.resolvconf) %}
{%-     endif %}
{%-   endfor %}
{%- endif %}
{%- if wireguard.install_go and wireguard.pkgs.go %}
{%-   do pkgs.append(wireguard.pkgs.go) %}
{%- endif %}

wireguard-package-install-pkg-installed:
  pkg.installed:
    - pkgs: {{ pkgs | json }}
