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
{%- from tplroot ~ "/map.jinja" import wireguard with context %}
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

{%- for name, iface in interfaces | dictsort if not iface.absent %}

{{ ('wireguard-config-key-wireguard-private_key-' ~ name) | json }}:
  wireguard.private_key:
    - name: {{ name | json }}
    - config_dir: {{ config_dir | json }}
    - require:
      - file: wireguard-config-key-file-directory
{%- endfor %}
