# -*- coding: utf-8 -*-
# vim: ft=sls
# Metrics with names (docs/metrics.md): with `lookup:metrics` set, the minion's
# own scheduler runs wireguard.metrics every `interval` seconds and it writes the
# textfile node_exporter reads (no salt-call started per interval, as a timer
# would). Without it, the job and the file it wrote are removed. A textfile
# that moved is removed from its old place.
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{#- The map data this run already has, else map.jinja (once a run: issue 24) #}
{%- set wireguard = salt['wireguard_layout.run_map'](tplroot) %}
{%- if wireguard is none %}
{%-   from tplroot ~ "/map.jinja" import wireguard with context %}
{%- endif %}
{%- set metrics = salt['wireguard.pillar_settings']().metrics %}
{#- offline: the saved schedule, read without asking the running minion #}
{%- set job = salt['schedule.list'](show_all=True, return_yaml=False, offline=True).get('wireguard-metrics') %}
{%- set old = (job.get('kwargs') or {}).get('textfile') if job is mapping else None %}

{%- if metrics %}

wireguard-metrics-schedule-present:
  schedule.present:
    - name: wireguard-metrics
    - function: wireguard.metrics
    - job_kwargs:
        textfile: {{ metrics.textfile | json }}
        scheduled: true
    - seconds: {{ metrics.interval }}
    - run_on_start: true
    - return_job: false
    - maxrunning: 1
{%- else %}

wireguard-metrics-schedule-absent:
  schedule.absent:
    - name: wireguard-metrics
{#- Not in the saved schedule (where schedule.present puts it): the running minion is
    not asked either. Asked with no salt-minion running (salt-call --local), it waits
    2 s for an answer on every apply (issue 24). #}
{%-   if job is not mapping %}
    - offline: true
{%-   endif %}
{%- endif %}
{%- if old is string and old.startswith('/') and '..' not in old
      and (not metrics or old != metrics.textfile) %}

wireguard-metrics-file-absent:
  file.absent:
    - name: {{ old | json }}
{%- endif %}
