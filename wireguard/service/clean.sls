# -*- coding: utf-8 -*-
# vim: ft=sls
# Stops and disables the service of every interface (wg-quick down removes
# the interface, its routes and its NAT rules), and removes OpenRC links and the
# formula's systemd drop-ins (OpenRC: its links in /etc/wireguard).
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{#- The map data this run already has, else map.jinja (once a run: issue 24) #}
{%- set wireguard = salt['wireguard_layout.run_map'](tplroot) %}
{%- if wireguard is none %}
{%-   from tplroot ~ "/map.jinja" import wireguard with context %}
{%- endif %}
{%- from tplroot ~ "/libclean.jinja" import clean_interfaces with context %}

{%- for name in clean_interfaces %}

{{ ('wireguard-service-clean-service-dead-' ~ name) | json }}:
  service.dead:
    - name: {{ salt['wireguard.service_name'](name) | json }}
    - enable: false

{#- networkd's files of the interface, and the interface it made (docs/networkd.md) #}
{{ ('wireguard-service-clean-wireguard-networkd_absent-' ~ name) | json }}:
  wireguard.networkd_absent:
    - name: {{ name | json }}
    - config_dir: {{ wireguard.config_dir | json }}
{%-   set dropin = salt['wireguard_layout.service_dropin'](name, wireguard.config_dir,
                                                          wireguard.service.name) %}
{%-   if dropin and salt['file.file_exists'](dropin.path) %}

{{ ('wireguard-service-clean-file-absent-dropin-' ~ name) | json }}:
  file.absent:
{#- the unit's .d directory too when the drop-in is all it holds (the formula made it) #}
{%-   set dropin_dir = dropin.path.rsplit('/', 1)[0] %}
    - name: {{ (dropin_dir if salt['file.readdir'](dropin_dir) | length == 3 else dropin.path) | json }}
    - require:
      - service: {{ ('wireguard-service-clean-service-dead-' ~ name) | json }}

{{ ('wireguard-service-clean-module-run-daemon-reload-' ~ name) | json }}:
  module.run:
    - service.systemctl_reload: []
    - onchanges:
      - file: {{ ('wireguard-service-clean-file-absent-dropin-' ~ name) | json }}
{%-   endif %}
{%-   set conf_link = salt['wireguard_layout.service_link'](name, wireguard.config_dir,
                                                           wireguard.service.link_target) %}
{%-   if conf_link and conf_link.target and salt['file.is_link'](conf_link.path) %}

{{ ('wireguard-service-clean-file-absent-conf-link-' ~ name) | json }}:
  file.absent:
    - name: {{ conf_link.path | json }}
    - require:
      - service: {{ ('wireguard-service-clean-service-dead-' ~ name) | json }}
{%-   endif %}
{%-   if wireguard.service.link %}

{{ ('wireguard-service-clean-file-absent-' ~ name) | json }}:
  file.absent:
    - name: {{ wireguard.service.link | replace('{interface}', name) | json }}
    - require:
      - service: {{ ('wireguard-service-clean-service-dead-' ~ name) | json }}
{%-   endif %}
{%- else %}

wireguard-service-clean-test-nop:
  test.nop:
    - name: no WireGuard interface to stop
{%- endfor %}
