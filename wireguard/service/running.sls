# -*- coding: utf-8 -*-
# vim: ft=sls
# Per interface: the wg-quick service enabled and running (enabled: true),
# or stopped and disabled (enabled: false, or absent: true).
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set sls_config_file = tplroot ~ '.config.file' %}
{#- The map data this run already has, else map.jinja (once a run: issue 24) #}
{%- set wireguard = salt['wireguard_layout.run_map'](tplroot) %}
{%- if wireguard is none %}
{%-   from tplroot ~ "/map.jinja" import wireguard with context %}
{%- endif %}
{%- set interfaces = salt['wireguard.pillar_interfaces'](config_dir=wireguard.config_dir) %}

include:
  - {{ sls_config_file }}

{%- for name, iface in interfaces | dictsort %}
{%-   set unit = iface.service %}
{%-   set link_id = 'wireguard-service-running-file-symlink-' ~ name %}
{#-   systemd: a drop-in names <config_dir>/<if>.conf where it is not /etc/wireguard
      (the stock wg-quick@ reads /etc/wireguard/%i.conf only); gone when it is. #}
{%-   set dropin = salt['wireguard_layout.service_dropin'](name, wireguard.config_dir,
                                                          wireguard.service.name) %}
{%-   set dropin_id = 'wireguard-service-running-file-dropin-' ~ name %}
{%-   set reload_id = 'wireguard-service-running-module-run-daemon-reload-' ~ name %}
{#-   networkd (docs/networkd.md): no drop-in; wireguard.config removes one on a switch #}
{%-   set has_dropin = dropin and iface.backend != 'networkd' and (
                         dropin.text and not iface.absent
                         or salt['file.file_exists'](dropin.path)) %}
{%-   if has_dropin and dropin.text and not iface.absent %}

{{ dropin_id | json }}:
  file.managed:
    - name: {{ dropin.path | json }}
    - contents: {{ dropin.text | json }}
    - user: root
    - group: root
    - mode: '0644'
    - makedirs: true
{%-   elif has_dropin %}

{{ dropin_id | json }}:
  file.absent:
{#- the unit's .d directory too when the drop-in is all it holds (the formula made it) #}
{%-   set dropin_dir = dropin.path.rsplit('/', 1)[0] %}
    - name: {{ (dropin_dir if salt['file.readdir'](dropin_dir) | length == 3 else dropin.path) | json }}
{%-     if iface.absent %}
    - require:
      - service: {{ ('wireguard-service-running-service-dead-' ~ name) | json }}
{%-     endif %}
{%-   endif %}
{%-   if has_dropin %}

{{ reload_id | json }}:
  module.run:
    - service.systemctl_reload: []
    - onchanges:
      - file: {{ dropin_id | json }}
{%-     if not iface.absent %}
{#-     before the conf's state, which may restart the service: the unit names the file #}
    - require_in:
      - wireguard: {{ ('wireguard-config-file-wireguard-config-' ~ name) | json }}
{%-     endif %}
{%-   endif %}
{#-   OpenRC: Alpine's init script reads /etc/wireguard/<if>.conf only: a link there. #}
{%-   set conf_link = salt['wireguard_layout.service_link'](name, wireguard.config_dir,
                                                           wireguard.service.link_target) %}
{%-   set conf_link_id = 'wireguard-service-running-file-conf-link-' ~ name %}
{#-   (with the default dir the link's place is the conf's: nothing to do there) #}
{%-   set has_conf_link = conf_link and conf_link.target and (
                            not iface.absent or salt['file.is_link'](conf_link.path)) %}
{%-   if has_conf_link and not iface.absent %}

{{ conf_link_id | json }}:
  file.symlink:
    - name: {{ conf_link.path | json }}
    - target: {{ conf_link.target | json }}
    - makedirs: true
    - require:
      - wireguard: {{ ('wireguard-config-file-wireguard-config-' ~ name) | json }}
{%-   elif has_conf_link %}

{{ conf_link_id | json }}:
  file.absent:
    - name: {{ conf_link.path | json }}
    - require:
      - service: {{ ('wireguard-service-running-service-dead-' ~ name) | json }}
{%-   endif %}
{%-   if wireguard.service.link and not iface.absent %}

{{ link_id | json }}:
  file.symlink:
    - name: {{ iface.service_link | json }}
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
{%-     if has_dropin %}
      - module: {{ reload_id | json }}
{%-     endif %}
{%-     if has_conf_link %}
      - file: {{ conf_link_id | json }}
{%-     endif %}
{%-   elif not iface.absent and iface.backend == 'networkd' %}
{#-     (networkd, enabled: false: wireguard.config removed its files and deleted it;
        systemd-networkd runs on for the rest of the minion) #}
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
{%-     if has_dropin %}
      - module: {{ reload_id | json }}
{%-     endif %}
{%-     if has_conf_link %}
      - file: {{ conf_link_id | json }}
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
    - name: {{ iface.service_link | json }}
    - require:
      - service: {{ ('wireguard-service-running-service-dead-' ~ name) | json }}
{%-     endif %}
{%-   endif %}
{%- endfor %}
