# -*- coding: utf-8 -*-
# vim: ft=sls
# Per running interface: each peer applied live through `wg set` (no restart,
# no packet lost to other peers), peers marked absent removed, and with
# purge_peers every live peer that pillar does not name removed.
{#- Get the `tplroot` from `tpldir` #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set sls_service_running = tplroot ~ '.service.running' %}
{#- The map data this run already has, else map.jinja (once a run: issue 24) #}
{%- set wireguard = salt['wireguard_layout.run_map'](tplroot) %}
{%- if wireguard is none %}
{%-   from tplroot ~ "/map.jinja" import wireguard with context %}
{%- endif %}
{%- set interfaces = salt['wireguard.pillar_interfaces'](config_dir=wireguard.config_dir) %}

include:
  - {{ sls_service_running }}

{%- for name, iface in interfaces | dictsort %}
{%-   if iface.warnings %}

{{ ('wireguard-peers-live-test-configurable_test_state-' ~ name ~ '-warnings') | json }}:
  test.configurable_test_state:
    - name: {{ (name ~ ': ' ~ iface.warnings | length ~ ' warning(s)') | json }}
    - changes: false
    - result: true
    - comment: {{ iface.warnings | join('; ') | json }}
    - warnings: {{ iface.warnings | json }}
{%-   endif %}
{%-   if iface.enabled and not iface.absent %}
{%-     set running_id = 'wireguard-service-running-service-running-' ~ name %}
{%-     set keep = [] %}
{#-     More than 200 peers (clients aside): one wireguard.peers state sets them all,
        and the purge reads pillar's peers itself, instead of a state per peer and a
        list of every key through this file (issue 24: 10,000 peer states cost seconds
        a run to render and to call). #}
{%-     set batched = iface.peers.values() | rejectattr('client') | selectattr('public_key')
                      | list | length > 200 %}
{%-     if batched %}

{{ ('wireguard-peers-live-wireguard-peers-' ~ name) | json }}:
  wireguard.peers:
    - name: {{ name | json }}
    - config_dir: {{ wireguard.config_dir | json }}
    - require:
      - service: {{ running_id | json }}
{%-     endif %}
{%-     for peer_name, peer in iface.peers | dictsort
            if peer.public_key and not peer.client and not batched %}
{%-       if peer.absent %}

{{ ('wireguard-peers-live-wireguard-peer_absent-' ~ name ~ '-' ~ peer_name) | json }}:
  wireguard.peer_absent:
    - name: {{ peer.public_key | json }}
    - interface: {{ name | json }}
    - require:
      - service: {{ running_id | json }}
{%-       else %}
{%-         do keep.append(peer.public_key) %}

{{ ('wireguard-peers-live-wireguard-peer-' ~ name ~ '-' ~ peer_name) | json }}:
  wireguard.peer:
    - name: {{ peer.public_key | json }}
    - interface: {{ name | json }}
    - allowed_ips: {{ peer.allowed_ips | json }}
    - endpoint: {{ peer.endpoint | json }}
    - persistent_keepalive: {{ peer.persistent_keepalive | json }}
{%-         if peer.has_preshared_key %}
{#-         A pillar path: the state reads the key itself, it never passes here. #}
    - preshared_key_pillar: {{ peer.preshared_key_pillar | json }}
{%-         endif %}
    - require:
      - service: {{ running_id | json }}
{%-       endif %}
{%-     endfor %}
{%-     if iface.clients_managed %}
{#-     Clients' keys may be made in this run: the state reads them itself. #}

{{ ('wireguard-peers-live-wireguard-client_peers-' ~ name) | json }}:
  wireguard.client_peers:
    - name: {{ name | json }}
    - config_dir: {{ wireguard.config_dir | json }}
    - require:
      - service: {{ running_id | json }}
{#-     Arms the timer that removes a client's live peer when it expires (issue 23). #}

{{ ('wireguard-peers-live-wireguard-client_expiry-' ~ name) | json }}:
  wireguard.client_expiry:
    - name: {{ name | json }}
    - config_dir: {{ wireguard.config_dir | json }}
    - require:
      - wireguard: {{ ('wireguard-peers-live-wireguard-client_peers-' ~ name) | json }}
{#-     Holds rated clients to their rates with tc, live (issue 23, docs/clients.md). #}

{{ ('wireguard-peers-live-wireguard-client_rates-' ~ name) | json }}:
  wireguard.client_rates:
    - name: {{ name | json }}
    - config_dir: {{ wireguard.config_dir | json }}
    - require:
      - wireguard: {{ ('wireguard-peers-live-wireguard-client_peers-' ~ name) | json }}
{%-     endif %}
{%-     if iface.purge_peers %}

{{ ('wireguard-peers-live-wireguard-peers_purged-' ~ name) | json }}:
  wireguard.peers_purged:
    - name: {{ name | json }}
    - keep: {{ keep | json }}
{%-       if batched %}
    - keep_declared: true
{%-       endif %}
{%-       if iface.clients_managed %}
    - keep_clients: true
    - config_dir: {{ wireguard.config_dir | json }}
{%-       endif %}
    - require:
      - service: {{ running_id | json }}
{%-     endif %}
{%-   elif iface.absent %}
{#-   The interface goes: so do its expiry timer, units and records (issue 23). #}

{{ ('wireguard-peers-live-wireguard-client_expiry_absent-' ~ name) | json }}:
  wireguard.client_expiry_absent:
    - name: {{ name | json }}
{%-   endif %}
{%- endfor %}
