# -*- coding: utf-8 -*-
# vim: ft=sls
# The config directory (0700), and per interface its private key
# (<config_dir>/<if>.key, 0600) and conf (<config_dir>/<if>.conf, 0600).
# Keys never pass through this template: the wireguard.private_key and
# wireguard.config states read them from pillar or the key file themselves.
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set sls_package_install = tplroot ~ '.package.install' %}
{%- from tplroot ~ "/map.jinja" import wireguard with context %}
{%- set config_dir = wireguard.config_dir %}
{%- set interfaces = salt['wireguard.pillar_interfaces'](config_dir=config_dir) %}

include:
  - {{ sls_package_install }}

wireguard-config-file-file-directory:
  file.directory:
    - name: {{ config_dir | json }}
    - user: root
    - group: root
    - mode: '0700'
    - require:
      - sls: {{ sls_package_install }}

{%- for name, iface in interfaces | dictsort %}
{%-   if iface.absent %}
{#-     The service is stopped first (service/running.sls, require_in), so
        wg-quick down still finds the conf and runs its PostDown hooks. #}
{%-     for suffix in ['conf', 'key'] %}

{{ ('wireguard-config-file-file-absent-' ~ name ~ '-' ~ suffix) | json }}:
  file.absent:
    - name: {{ (config_dir ~ '/' ~ name ~ '.' ~ suffix) | json }}
{%-     endfor %}
{%-   else %}

{{ ('wireguard-config-file-wireguard-private_key-' ~ name) | json }}:
  wireguard.private_key:
    - name: {{ name | json }}
    - config_dir: {{ config_dir | json }}
    - require:
      - file: wireguard-config-file-file-directory

{{ ('wireguard-config-file-wireguard-config-' ~ name) | json }}:
  wireguard.config:
    - name: {{ name | json }}
    - config_dir: {{ config_dir | json }}
{%-     if iface.enabled %}
{#-     Restarts the running service when the [Interface] part changes. #}
    - service: {{ wireguard.service.name | replace('{interface}', name) | json }}
{%-     endif %}
    - require:
      - wireguard: {{ ('wireguard-config-file-wireguard-private_key-' ~ name) | json }}
{%-   endif %}
{%- endfor %}
