# -*- coding: utf-8 -*-
# vim: ft=sls
# Per interface its conf (<config_dir>/<if>.conf, 0600), rendered from pillar
# and the key file by the wireguard.config state, after the key (key.sls).
# Keys never pass through this template: the state reads them itself.
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set sls_config_key = tplroot ~ '.config.key' %}
{%- set sls_config_clients = tplroot ~ '.config.clients' %}
{#- The map data this run already has, else map.jinja (once a run: issue 24) #}
{%- set wireguard = salt['wireguard_layout.run_map'](tplroot) %}
{%- if wireguard is none %}
{%-   from tplroot ~ "/map.jinja" import wireguard with context %}
{%- endif %}
{%- set config_dir = wireguard.config_dir %}
{%- set interfaces = salt['wireguard.pillar_interfaces'](config_dir=config_dir) %}

include:
  - {{ sls_config_key }}
  - {{ sls_config_clients }}

{%- for name, iface in interfaces | dictsort %}
{%-   if iface.absent %}
{#-     The service is stopped first (service/running.sls, require_in), so
        wg-quick down still finds the conf and runs its PostDown hooks. #}
{%-     for suffix in ['conf', 'key'] %}

{{ ('wireguard-config-file-file-absent-' ~ name ~ '-' ~ suffix) | json }}:
  file.absent:
    - name: {{ iface.files[suffix] | json }}
{%-     endfor %}

{#-     networkd's .netdev, .network and key copies, and the interface it made #}
{{ ('wireguard-config-file-wireguard-networkd_absent-' ~ name) | json }}:
  wireguard.networkd_absent:
    - name: {{ name | json }}
    - config_dir: {{ config_dir | json }}

{{ ('wireguard-config-file-file-absent-' ~ name ~ '-clients') | json }}:
  file.absent:
    - names:
      - {{ iface.files.clients_record | json }}
      - {{ iface.files.clients_dir | json }}
{%-   else %}

{{ ('wireguard-config-file-wireguard-config-' ~ name) | json }}:
  wireguard.config:
    - name: {{ name | json }}
    - config_dir: {{ config_dir | json }}
{%-     if iface.enabled %}
{#-     Restarts the running service when the [Interface] part changes. #}
    - service: {{ iface.service | json }}
{%-     endif %}
    - require:
      - wireguard: {{ ('wireguard-config-key-wireguard-private_key-' ~ name) | json }}
{%-     if iface.clients_managed %}
      - wireguard: {{ ('wireguard-config-clients-wireguard-clients-' ~ name) | json }}
{%-     endif %}
{%-   endif %}
{%- endfor %}
