# -*- coding: utf-8 -*-
# vim: ft=sls
# IP forwarding, live and persisted in the sysctl file of the map, when an
# interface sets `forwarding: true` (IPv6 too when it has an IPv6 address).
# `forwarding: false` leaves the sysctls alone: other software may need them.
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{#- The map data this run already has, else map.jinja (once a run: issue 24) #}
{%- set wireguard = salt['wireguard_layout.run_map'](tplroot) %}
{%- if wireguard is none %}
{%-   from tplroot ~ "/map.jinja" import wireguard with context %}
{%- endif %}
{%- set interfaces = salt['wireguard.pillar_interfaces'](config_dir=wireguard.config_dir) %}
{%- set sysctls = [] %}
{%- for name, iface in interfaces | dictsort if iface.forwarding and not iface.absent %}
{%-   if 'net.ipv4.ip_forward' not in sysctls %}
{%-     do sysctls.append('net.ipv4.ip_forward') %}
{%-   endif %}
{%-   if iface.ipv6 and 'net.ipv6.conf.all.forwarding' not in sysctls %}
{%-     do sysctls.append('net.ipv6.conf.all.forwarding') %}
{%-   endif %}
{%- endfor %}

{%- for sysctl in sysctls %}

{{ ('wireguard-network-forwarding-sysctl-present-' ~ sysctl) | json }}:
  sysctl.present:
    - name: {{ sysctl | json }}
    - value: 1
    - config: {{ wireguard.sysctl_file | json }}
{%- else %}

{#- an SLS with no state fails when applied alone #}
wireguard-network-forwarding-test-nop:
  test.nop:
    - name: no interface sets forwarding
{%- endfor %}
