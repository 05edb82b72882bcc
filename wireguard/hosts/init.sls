# -*- coding: utf-8 -*-
# vim: ft=sls
# Peers by name (docs/lifecycle.md#peers-by-name): per interface of pillar, its
# block of /etc/hosts is what its `hosts` option asks for (`<address>
# <name>.<domain>` for the minion, its peers, nodes and clients), or gone when it
# has none or is absent; so is the block of an interface pillar no longer names
# whose conf is still in the config directory.
# Every other line of the file stays.
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{#- The map data this run already has, else map.jinja (once a run: issue 24) #}
{%- set wireguard = salt['wireguard_layout.run_map'](tplroot) %}
{%- if wireguard is none %}
{%-   from tplroot ~ "/map.jinja" import wireguard with context %}
{%- endif %}
{%- set interfaces = salt['wireguard.pillar_interfaces'](config_dir=wireguard.config_dir) %}

{%- for name in interfaces | sort %}

{{ ('wireguard-hosts-file-managed-' ~ name) | json }}:
  wireguard.hosts:
    - name: {{ name | json }}
    - config_dir: {{ wireguard.config_dir | json }}
{%- endfor %}

{%- set left = [] %}
{%- if salt['file.directory_exists'](wireguard.config_dir) %}
{%-   for path in salt['file.find'](wireguard.config_dir, type='f', name='*.conf', maxdepth=1) %}
{%-     set name = path.split('/')[-1][:-5] %}
{%-     if salt['wireguard.is_interface_name'](name) and name not in interfaces %}
{%-       do left.append(name) %}
{%-     endif %}
{%-   endfor %}
{%- endif %}

{%- for name in left | sort %}

{{ ('wireguard-hosts-file-absent-' ~ name) | json }}:
  wireguard.hosts_absent:
    - name: {{ name | json }}
{%- endfor %}
