# -*- coding: utf-8 -*-
# vim: ft=sls
# Removes the persisted forwarding sysctls. The live values stay until the
# next boot: other software may rely on forwarding. Routes through an
# interface go away with it (service.clean).
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import wireguard with context %}

wireguard-network-clean-file-absent:
  file.absent:
    - name: {{ wireguard.sysctl_file | json }}
