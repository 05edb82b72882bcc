# -*- coding: utf-8 -*-
# vim: ft=sls
# First in wireguard.clean: per interface with a confirm state directory or boot
# unit (found on the minion, so a bad pillar does not stop the clean), an undo
# still armed is disarmed (no timer may put a file back under the clean), the
# boot-time unit and the recorded state removed.
{%- for name in salt['wireguard.confirm_status']() | sort %}

{{ ('wireguard-confirm-clean-' ~ name) | json }}:
  wireguard.confirm_absent:
    - name: {{ name | json }}
{%- else %}

wireguard-confirm-clean-test-nop:
  test.nop:
    - name: no confirm state directory or boot unit
{%- endfor %}
