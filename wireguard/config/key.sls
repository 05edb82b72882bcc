# -*- coding: utf-8 -*-
# vim: ft=sls
# The config directory (0700), and per interface its private key
# (<config_dir>/<if>.key, 0600): the one from pillar, or one generated once on
# the minion. The key never passes through this template: the
# wireguard.private_key state reads pillar itself. Applied alone (the first
# step of wireguard.orchestrate) it makes every key, so the mine can publish
# the public halves before any conf is written.
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set sls_package_install = tplroot ~ '.package.install' %}
{#- The map data this run already has, else map.jinja (once a run: issue 24) #}
{%- set wireguard = salt['wireguard_layout.run_map'](tplroot) %}
{%- if wireguard is none %}
{%-   from tplroot ~ "/map.jinja" import wireguard with context %}
{%- endif %}
{%- set config_dir = wireguard.config_dir %}
{%- set interfaces = salt['wireguard.pillar_interfaces'](config_dir=config_dir) %}

include:
  - {{ sls_package_install }}

wireguard-config-key-file-directory:
  file.directory:
    - name: {{ config_dir | json }}
    - user: root
    - group: root
    - mode: '0700'
    - require:
      - sls: {{ sls_package_install }}
{%- if not salt['file.directory_exists'](config_dir) %}

{#- The formula makes the directory: say so, so that clean removes it (only then). #}
wireguard-config-key-file-managed-marker:
  file.managed:
    - name: {{ salt['wireguard.pillar_settings']().files.marker | json }}
    - contents: "# The wireguard formula made this directory: wireguard.clean removes it when empty.\n"
    - user: root
    - group: root
    - mode: '0600'
    - replace: false
    - require:
      - file: wireguard-config-key-file-directory
{%- endif %}

{%- for name, iface in interfaces | dictsort if not iface.absent %}

{{ ('wireguard-config-key-wireguard-private_key-' ~ name) | json }}:
  wireguard.private_key:
    - name: {{ name | json }}
    - config_dir: {{ config_dir | json }}
    - require:
      - file: wireguard-config-key-file-directory
{%- endfor %}
