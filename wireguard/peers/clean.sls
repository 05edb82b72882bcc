# -*- coding: utf-8 -*-
# vim: ft=sls
# Removes every live peer of the formula's interfaces that are up. Peers live
# only in the running interface: service.clean then takes it down. Each client
# expiry timer (its units and records, issue 23) goes too: of every interface the
# clean knows and of every state directory under /var/lib/wireguard-formula/expiry
# (wgf_expiry.STATE_ROOT), so that no timer runs after the clean.
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{#- The map data this run already has, else map.jinja (once a run: issue 24) #}
{%- set wireguard = salt['wireguard_layout.run_map'](tplroot) %}
{%- if wireguard is none %}
{%-   from tplroot ~ "/map.jinja" import wireguard with context %}
{%- endif %}
{%- from tplroot ~ "/libclean.jinja" import clean_interfaces with context %}
{%- set live = salt['wireguard.interfaces']() if salt['cmd.which']('wg') else [] %}

{%- for name in clean_interfaces if name in live %}

{{ ('wireguard-peers-clean-wireguard-peers_purged-' ~ name) | json }}:
  wireguard.peers_purged:
    - name: {{ name | json }}
    - keep: []
{%- else %}

wireguard-peers-clean-test-nop:
  test.nop:
    - name: no live WireGuard interface to purge
{%- endfor %}
{%- set expiry_root = '/var/lib/wireguard-formula/expiry' %}
{%- set expiring = [] %}
{%- for name in clean_interfaces %}
{%-   do expiring.append(name) %}
{%- endfor %}
{%- if salt['file.directory_exists'](expiry_root) %}
{%-   for path in salt['file.find'](expiry_root, type='d', mindepth=1, maxdepth=1) %}
{%-     set name = path.split('/')[-1] %}
{%-     if salt['wireguard.is_interface_name'](name) and name not in expiring %}
{%-       do expiring.append(name) %}
{%-     endif %}
{%-   endfor %}
{%- endif %}
{%- for name in expiring | sort %}

{{ ('wireguard-peers-clean-wireguard-client_expiry_absent-' ~ name) | json }}:
  wireguard.client_expiry_absent:
    - name: {{ name | json }}
{%- endfor %}
