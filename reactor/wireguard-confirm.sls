{#-
  Reactor: when a minion starts, it reports each confirmed change (issue 21,
  docs/confirm.md) that its undo timer or boot-time unit undid while salt-minion was
  not running: wireguard.confirm_report sends the event wireguard/confirm/undone once
  per undo, from the minion. Likewise wireguard.client_expiry_report sends
  wireguard/client/expired for each client whose peer the expiry timer removed while no
  master answered (issue 23, docs/clients.md).

  Master config (see docs/confirm.md):

    reactor:
      - 'salt/minion/*/start':
        - salt://reactor/wireguard-confirm.sls

  Only the minion that started is targeted (as a list, never as a glob); the call
  takes no argument, so a forged start event can do no more than make that minion
  look at its own markers.
-#}
{%- set minion = data.get('id') or tag.split('/')[2] | default('') %}
{%- if minion is string and minion | regex_match('^([^,\\s*?\\[\\]]{1,255})\\Z') %}
wireguard-confirm-report:
  local.wireguard.confirm_report:
    - tgt: {{ minion | json }}
    - tgt_type: list

wireguard-client-expiry-report:
  local.wireguard.client_expiry_report:
    - tgt: {{ minion | json }}
    - tgt_type: list
{%- endif %}
