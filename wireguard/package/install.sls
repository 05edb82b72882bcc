# -*- coding: utf-8 -*-
# vim: ft=sls
# The tools; resolvconf where an interface sets `dns` and the OS needs it;
# the firewall backend's package where an interface NATs, opens its port,
# limits access or takes a default route.
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import wireguard with context %}
{#- Validated pillar, secrets removed; a bad pillar fails here, before any state runs. #}
{%- set interfaces = salt['wireguard.pillar_interfaces'](config_dir=wireguard.config_dir) %}
{%- set pkgs = [wireguard.pkgs.tools] + wireguard.pkgs.get('extra', []) %}
{%- set needs = namespace(resolvconf=false, firewall=false) %}
{%- for iface in interfaces.values() if not iface.absent %}
{%-   if iface.dns %}
{%-     set needs.resolvconf = true %}
{%-   endif %}
{%-   if iface.masquerade or iface.open_port or iface.access %}
{%-     set needs.firewall = true %}
{%-   endif %}
{%-   if iface.table == 'auto' %}
{%-     for peer in iface.peers.values() if not peer.absent %}
{%-       if '0.0.0.0/0' in peer.allowed_ips or '::/0' in peer.allowed_ips %}
{%-         set needs.firewall = true %}
{%-       endif %}
{%-     endfor %}
{%-   endif %}
{%- endfor %}
{%- if needs.resolvconf and wireguard.pkgs.resolvconf %}
{%-   do pkgs.append(wireguard.pkgs.resolvconf) %}
{%- endif %}
{%- if needs.firewall %}
{#-   every interface carries the minion's one firewall backend #}
{%-   set backend = (interfaces.values() | first).firewall %}
{%-   do pkgs.extend((wireguard.pkgs.get('firewall') or {}).get(backend) or []) %}
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
