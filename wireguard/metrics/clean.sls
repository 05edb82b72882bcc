# -*- coding: utf-8 -*-
# vim: ft=sls
# Removes the scheduler's wireguard-metrics job and the textfile it wrote (the one
# pillar names, and the one the saved job names), and the directory of the latest
# verify probe's result that the textfile reads (wgf_layout.VERIFY_RESULT's).
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{#- The map data this run already has, else map.jinja (once a run: issue 24) #}
{%- set wireguard = salt['wireguard_layout.run_map'](tplroot) %}
{%- if wireguard is none %}
{%-   from tplroot ~ "/map.jinja" import wireguard with context %}
{%- endif %}
{%- set files = [] %}
{%- if wireguard.metrics is mapping and wireguard.metrics.textfile %}
{%-   do files.append(wireguard.metrics.textfile) %}
{%- endif %}
{#- offline: the saved schedule, read without asking the running minion #}
{%- set job = salt['schedule.list'](show_all=True, return_yaml=False, offline=True).get('wireguard-metrics') %}
{%- set old = (job.get('kwargs') or {}).get('textfile') if job is mapping else None %}
{%- if old is string and old.startswith('/') and '..' not in old and old not in files %}
{%-   do files.append(old) %}
{%- endif %}

wireguard-metrics-clean-schedule-absent:
  schedule.absent:
    - name: wireguard-metrics
{%- for path in files %}

{{ ('wireguard-metrics-clean-file-absent-' ~ loop.index) | json }}:
  file.absent:
    - name: {{ path | json }}
{%- endfor %}

wireguard-metrics-clean-verify-result-absent:
  file.absent:
    - name: /var/lib/wireguard-formula/verify
