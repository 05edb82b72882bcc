{#-
  Reactor: when the wireguard beacon reports a stale peer, re-resolve that peer's
  host-name endpoint on the minion that saw it go stale. A peer behind a dynamic DNS
  name that moved is found again without a human.

  Master config (see docs/audit.md):

    reactor:
      - 'salt/beacon/*/wireguard/stale':
        - salt://reactor/wireguard-stale.sls

  The event comes from a minion, so nothing in it is trusted: the interface and the
  public key must look like one, and only the minion that sent the event is targeted
  (as a list, never as a glob). The reaction is harmless even when forged: it only
  re-resolves names the target's own config file holds (wireguard.reresolve).
-#}
{%- set minion = data.get('id') or '' %}
{%- set interface = data.get('interface') or '' %}
{%- set peer = data.get('peer') or '' %}
{%- if minion is string and interface is string and peer is string
      and minion | regex_match('^([^,\\s*?\\[\\]]{1,255})\\Z')
      and interface | regex_match('^([A-Za-z0-9_=+.-]{1,15})\\Z')
      and peer | regex_match('^([A-Za-z0-9+/]{43}=)\\Z') %}
wireguard-reresolve-{{ interface }}-{{ peer[:8] | replace('/', '_') | replace('+', '-') }}:
  local.wireguard.reresolve:
    - tgt: {{ minion | json }}
    - tgt_type: list
    - args:
      - interface: {{ interface | json }}
      - peer: {{ peer | json }}
{%- endif %}
