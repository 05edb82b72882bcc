# -*- coding: utf-8 -*-
# vim: ft=sls
# Stops and disables the service of every interface (wg-quick down removes
# the interface, its routes and its NAT rules), and removes OpenRC links.
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import wireguard with context %}
{%- from tplroot ~ "/libclean.jinja" import clean_interfaces with context %}

{%- for name in clean_interfaces %}

{{ ('wireguard-service-clean-service-dead-' ~ name) | json }}:
  service.dead:
    - name: {{ wireguard.service.name | replace('{interface}', name) | json }}
    - enable: false
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
