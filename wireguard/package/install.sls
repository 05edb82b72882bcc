# -*- coding: utf-8 -*-
# vim: ft=sls
# The tools; resolvconf where an interface sets `dns` and the OS needs it;
# the firewall backend's package where an interface NATs, opens its port,
# limits access or takes a default route.
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{#- The map data this run already has, else map.jinja (once a run: issue 24) #}
{%- set wireguard = salt['wireguard_layout.run_map'](tplroot) %}
{%- if wireguard is none %}
{%-   from tplroot ~ "/map.jinja" import wireguard with context %}
{%- endif %}
{#- Validated pillar, secrets removed; a bad pillar fails here, before any state runs.
    What the packages must bring is decided in Python (wgf_pipeline.settings). #}
{%- set settings = salt['wireguard.pillar_settings']() %}
{%- set pkgs = [wireguard.pkgs.tools] + wireguard.pkgs.get('extra', []) %}
{%- if settings.needs.resolvconf and wireguard.pkgs.resolvconf %}
{%-   do pkgs.append(wireguard.pkgs.resolvconf) %}
{%- endif %}
{%- if settings.needs.firewall_tools %}
{%-   do pkgs.extend((wireguard.pkgs.get('firewall') or {}).get(settings.firewall) or []) %}
{%- endif %}
{%- if wireguard.install_go and wireguard.pkgs.go %}
{%-   do pkgs.append(wireguard.pkgs.go) %}
{%- endif %}

wireguard-package-install-pkg-installed:
  pkg.installed:
    - pkgs: {{ pkgs | json }}
{%- if wireguard.install_recommends is not none %}
    - install_recommends: {{ wireguard.install_recommends | json }}
{%- endif %}
