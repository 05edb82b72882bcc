# -*- coding: utf-8 -*-
# vim: ft=sls
# Per interface: the wg-quick service enabled and running (enabled: true),
# or stopped and disabled (enabled: false, or absent: true).
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set sls_config_file = tplroot ~ '.config.file' %}
{%- from tplroot ~ "/map.jinja" import wireguard with context %}
{%- set interfaces = salt['wireguard.pillar_interfaces'](config_dir=wireguard.config_dir) %}

include:
  - {{ sls_config_file }}

{%- for name, iface in interfaces | dictsort %}
{%-   set unit = wireguard.service.name | replace('{interface}', name) %}
{%-   set link_id = 'wireguard-service-running-file-symlink-' ~ name %}
{%-   if wireguard.service.link and not iface.absent %}

{{ link_id | json }}:
  file.symlink:
    - name: {{ wireguard.service.link | replace('{interface}', name) | json }}
    - target: {{ wireguard.service.link_target | json }}
    - require:
      - wireguard: {{ ('wireguard-config-file-wireguard-config-' ~ name) | json }}
{%-   endif %}
{%-   if iface.enabled and not iface.absent %}

{{ ('wireguard-service-running-service-running-' ~ name) | json }}:
  service.running:
    - name: {{ unit | json }}
    - enable: true
    - require:
      - wireguard: {{ ('wireguard-config-file-wireguard-config-' ~ name) | json }}
{%-     if wireguard.service.link %}
      - file: {{ link_id | json }}
{%-     endif %}
{%-   elif not iface.absent %}

{{ ('wireguard-service-running-service-dead-' ~ name) | json }}:
  service.dead:
    - name: {{ unit | json }}
    - enable: false
    - require:
      - wireguard: {{ ('wireguard-config-file-wireguard-config-' ~ name) | json }}
{%-     if wireguard.service.link %}
      - file: {{ link_id | json }}
{%-     endif %}
{%-   else %}

{{ ('wireguard-service-running-service-dead-' ~ name) | json }}:
  service.dead:
    - name: {{ unit | json }}
    - enable: false
    - require_in:
      - file: {{ ('wireguard-config-file-file-absent-' ~ name ~ '-conf') | json }}
      - file: {{ ('wireguard-config-file-file-absent-' ~ name ~ '-key') | json }}
{%-     if wireguard.service.link %}

{{ ('wireguard-service-running-file-absent-' ~ name) | json }}:
  file.absent:
    - name: {{ wireguard.service.link | replace('{interface}', name) | json }}
    - require:
      - service: {{ ('wireguard-service-running-service-dead-' ~ name) | json }}
{%-     endif %}
{%-   endif %}
{%- endfor %}
